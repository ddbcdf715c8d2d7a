-- examples/blog_schema.lua FILE: a small blog schema written by hand in
-- SQL, as a team might have it before adopting loam: the README's
-- `loam models pull` starts from it.  Creates the tables in the SQLite
-- database FILE.
local loam = require "loam"

local db <close> = loam.connect("sqlite:" .. assert(arg[1], "usage: blog_schema.lua FILE"))
db:exec([[create table authors (
  id integer primary key,
  email varchar(120) not null unique,
  name text not null)]])
db:exec([[create table posts (
  id integer primary key,
  author_id integer not null references authors (id) on delete cascade,
  reply_to integer references posts (id),
  title text not null,
  state text not null default 'draft' check (state in ('draft', 'live')),
  published timestamp)]])
db:exec([[create table post_tags (
  post_id integer not null references posts (id) on delete cascade,
  tag text not null,
  primary key (post_id, tag))]])
db:exec("create index posts_published_idx on posts (published) where published is not null")
