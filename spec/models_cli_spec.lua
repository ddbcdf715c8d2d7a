-- spec/models_cli_spec.lua: `loam models pull` and `loam models diagram`
-- as a user runs them: the host under test in a project directory, on
-- SQLite and PostgreSQL.

local helper = require "spec.helper"

local loam, q = helper.loam, helper.shell_quote

local write = helper.write

local TABLES = { "mc_posts", "mc_authors" }

for backend, pg in helper.each_backend() do
  if backend.url ~= "sqlite::memory:" then
    describe(backend.label .. ": loam models pull", function()
      local db, dir

      before_each(function()
        db = helper.connect(backend)
        helper.drop_tables(db, TABLES)
        db:exec("create table mc_authors (id integer primary key, name text not null)")
        db:exec([[create table mc_posts (id integer primary key, title text not null,
                  author_id integer not null references mc_authors (id) on delete cascade)]])
        dir = helper.tmpdir()
        write(dir .. "/loam.config.lua", "models = 'models'\n")
      end)

      after_each(function()
        helper.finish(db, TABLES)
      end)

      it("writes one file per table into the models folder and prints them", function()
        local out, err, code = loam(dir, "models pull --db " .. q(backend.url) .. " mc_posts mc_authors")
        assert.are.equal("", err)
        assert.are.equal(0, code)
        assert.are.equal("wrote models/mc_authors.lua (mc_authors, model McAuthor)\n"
                         .. "wrote models/mc_posts.lua (mc_posts, model McPost)\n", out)
        local text = helper.slurp(dir .. "/models/mc_posts.lua")
        assert.matches('models.McPost:belongs_to("author", models.McAuthor, '
                       .. '{ key = "author_id", inverse = "mc_posts" })', text, 1, true)
        -- The project loads what pull wrote: `loam run` finds the models.
        write(dir .. "/s.lua", "print(McPost.table, McAuthor.relations.mc_posts ~= nil)")
        out, err, code = loam(dir, "run --db " .. q(backend.url) .. " s.lua")
        assert.are.equal("", err)
        assert.are.same({ "mc_posts\ttrue\n", 0 }, { out, code })
      end)

      it("refuses to overwrite a model file and writes nothing, unless --force", function()
        assert(os.execute("mkdir " .. q(dir .. "/models")))
        write(dir .. "/models/mc_posts.lua", "-- mine\n")
        local out, err, code = loam(dir, "models pull --db " .. q(backend.url) .. " mc_authors mc_posts")
        assert.are.equal("", out)
        assert.are.equal("loam: exists: models/mc_posts.lua exists; nothing written (--force "
                         .. "overwrites)\n", err)
        assert.are.equal(1, code)
        assert.are.equal("-- mine\n", helper.slurp(dir .. "/models/mc_posts.lua"))
        assert.is_nil(io.open(dir .. "/models/mc_authors.lua"))
        out, err, code = loam(dir, "models pull --force --dir other --db " .. q(backend.url)
                                   .. " mc_posts")
        assert.are.same({ "wrote other/mc_posts.lua (mc_posts, model McPost)\n", "", 0 },
                        { out, err, code })
        out, err, code = loam(dir, "models pull --force --db " .. q(backend.url) .. " mc_posts")
        assert.are.same({ "", 0 }, { err, code })
        assert.matches("db:model", helper.slurp(dir .. "/models/mc_posts.lua"), 1, true)
      end)

      it("names an unknown table and writes nothing", function()
        local out, err, code = loam(dir, "models pull --db " .. q(backend.url) .. " mc_nothing")
        assert.are.equal("", out)
        assert.are.equal("loam: undefined_table: introspection: no table 'mc_nothing'\n", err)
        assert.are.equal(1, code)
        assert.is_nil(io.open(dir .. "/models"))
      end)
    end)
  end
end

describe("loam models", function()
  it("needs a command, and names an unknown one", function()
    local dir = helper.tmpdir()
    local _, err, code = loam(dir, "models")
    assert.are.equal(2, code)
    assert.matches("'loam models' needs a command: pull, diagram", err, 1, true)
    _, err, code = loam(dir, "models pul")
    assert.are.equal(2, code)
    assert.matches("unknown 'loam models' command 'pul'; did you mean 'pull'?", err, 1, true)
  end)

  it("is a command even where a models folder exists", function()
    local dir = helper.tmpdir()
    assert(os.execute("mkdir " .. q(dir .. "/models")))
    local out, _, code = loam(dir, "models --help")
    assert.are.equal(0, code)
    assert.matches("^usage: loam models COMMAND", out)
  end)
end)

for backend in helper.each_backend() do
  if backend.url ~= "sqlite::memory:" then
    describe(backend.label .. ": loam models diagram", function()
      local dir

      before_each(function()
        dir = helper.tmpdir()
        write(dir .. "/loam.config.lua", "models = 'models'\n")
        assert(os.execute("mkdir " .. q(dir .. "/models")))
        write(dir .. "/models/a.lua", [[
local loam = require "loam"
return function(db, models)
  models.Node = db:model("dg_nodes", {
    loam.id(),
    loam.text("name", { null = false, unique = true }),
    loam.bigint("parent_id", { references = "dg_nodes" }),
    loam.bigint("owner_id", { references = "dg_nodes" }),
  })
  return function()
    models.Node:belongs_to("parent", models.Node, { key = "parent_id" })
  end
end
]])
      end)

      it("prints the models as DOT: a box per model, an edge per relation and foreign key", function()
        local out, err, code = loam(dir, "models diagram --db " .. q(backend.url))
        assert.are.same({ "", 0 }, { err, code })
        assert.matches('^digraph "models" {\n', out)
        assert.matches('<tr><td bgcolor="#dde5f0"><b>Node</b> (dg_nodes)</td></tr>', out, 1, true)
        assert.matches('<tr><td port="id" align="left"><u>id: id <i>PK</i></u></td></tr>', out, 1,
                       true)
        assert.matches('<tr><td port="name" align="left">name: text <i>UQ NOT NULL</i></td></tr>',
                       out, 1, true)
        assert.matches('"dg_nodes":"parent_id" -> "dg_nodes":"id" [label="parent"];', out, 1, true)
        assert.matches('"dg_nodes":"owner_id" -> "dg_nodes":"id" [label="owner_id", '
                       .. 'style=dashed];', out, 1, true)
        assert.matches("}\n$", out)
        local out2 = loam(dir, "models diagram --output er.dot --db " .. q(backend.url))
        assert.are.equal("wrote er.dot\n", out2)
        assert.are.equal(out, helper.slurp(dir .. "/er.dot"))
      end)

      it("draws an SVG through Graphviz, or says how to get it", function()
        local out, err, code = loam(dir, "models diagram --output er.svg --db " .. q(backend.url))
        if os.execute("command -v dot >/dev/null") then
          assert.are.same({ "wrote er.svg\n", "", 0 }, { out, err, code })
          assert.matches("<svg", helper.slurp(dir .. "/er.svg"), 1, true)
        else
          assert.are.same({ "", 1 }, { out, code })
          assert.are.equal("loam: not_found: cannot draw er.svg: Graphviz's dot failed or is not "
            .. "installed (Debian: apt-get install graphviz); without .svg, --output writes the "
            .. "DOT text\n", err)
        end
      end)

      it("fails on a model file that does not load, in one line", function()
        write(dir .. "/models/b.lua", "return 42\n")
        local out, err, code = loam(dir, "models diagram --db " .. q(backend.url))
        assert.are.same({ "", 1 }, { out, code })
        assert.matches("^loam: misuse: .*models/b.lua returns a number; a model file returns a "
                       .. "function%(db, models%)\n$", err)
      end)
    end)
  end
end
