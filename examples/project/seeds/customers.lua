-- The customers every development database starts with, by email (unique
-- in models/customer.lua).  `loam seed` runs this file (and any other of
-- this folder) in one transaction; a second run changes nothing.
seed "customers" {
  key = "email",
  { email = "ada@example.com", tier = "pro" },
  { email = "bob@example.com" },
  { email = "cy@example.com", tier = "free" },
}
