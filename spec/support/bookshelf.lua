-- spec/support/bookshelf.lua: one piece of model code that runs unchanged
-- on every kind of PostgreSQL connection loam has: the server directly,
-- through PgBouncer (spec/pgbouncer_spec.lua), and a primary with a
-- streaming replica (spec/replica_spec.lua); the answers must be the same.

local loam = require "loam"
local helper = require "spec.helper"

local bookshelf = {}

-- The same model code for every connection: create, find, include,
-- transaction, insert_many, timestamps.  'between' runs between the steps.
function bookshelf.run(db, between)
  local out = {}
  local Author = db:model("pgb_authors", {
    loam.id(),
    loam.text("name", { null = false }),
    loam.timestamp("born"),
  })
  local Book = db:model("pgb_books", {
    loam.id(),
    loam.bigint("author_id", { null = false, references = Author }),
    loam.text("title", { null = false }),
  })
  Book:belongs_to("author", Author)
  Author:has_many("books", Book)
  helper.drop_tables(db, { "pgb_books", "pgb_authors" })
  db:create_tables { Author, Book }
  between()
  local a = Author:create { name = "Le Guin", born = "1929-10-21 12:00:00+00" }
  between()
  out[#out + 1] = Author:find(a.id).name
  out[#out + 1] = tostring(Author:find(a.id).born)
  between()
  Book:insert_many { { author_id = a.id, title = "A Wizard of Earthsea" },
                     { author_id = a.id, title = "The Dispossessed" } }
  between()
  db:transaction(function()
    -- (no 'between' here: the transaction holds the one server connection)
    Book:create { author_id = a.id, title = "The Lathe of Heaven" }
    Author:create { name = "Lem" }
  end)
  pcall(db.transaction, db, function()
    Author:create { name = "never" }
    error("rolled back")
  end)
  between()
  for _, b in ipairs(Book:include("author"):order_by("title"):all()) do
    out[#out + 1] = b.title .. " / " .. b.author.name
  end
  local authors = Author:include("books"):order_by("name"):all()
  for _, au in ipairs(authors) do out[#out + 1] = au.name .. ": " .. #au.books end
  out[#out + 1] = db:query("SELECT timestamptz '2024-07-01 12:00:00+02' AS t")[1].t
  helper.drop_tables(db, { "pgb_books", "pgb_authors" })
  return out
end

return bookshelf
