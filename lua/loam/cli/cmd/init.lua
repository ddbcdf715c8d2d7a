-- loam init [DIR]: a new project: loam.config.lua and its folders.

local config = require "loam.config"
local host = require "loam.cli.host"

local TEMPLATE = [[
-- loam.config.lua: this project's loam settings ('loam help' tells how
-- they are used).  Folders are relative to this file, and so are relative
-- SQLite paths.  --db, LOAM_DATABASE_URL and DATABASE_URL override 'url'.
models = "models"
migrations = "migrations"
seeds = "seeds"

environments = {
  development = { url = "sqlite:development.db" },
  test = { url = "sqlite:test.db" },
  -- production = { url = os.getenv("APP_DATABASE_URL"),
  --                migration_url = os.getenv("APP_OWNER_DATABASE_URL") },
}
]]

return {
  summary = "create loam.config.lua and the models, migrations and seeds folders",
  usage = "loam init [DIR]",
  help = [[
Writes DIR/loam.config.lua (DIR: the current directory by default, made
if it does not exist) and the folders models/, migrations/ and seeds/
beside it, and prints what it created.  An existing config is never
overwritten: init refuses and changes nothing.  Existing folders are kept.]],
  args = { min = 0, max = 1 },
  run = function(ctx)
    local given = ctx.args[1]
    local dir = config.join(host.getcwd(), given or ".")
    local function shown(name)
      return given and (given:gsub("/+$", "") .. "/" .. name) or name
    end
    local path = config.join(dir, config.NAME)
    if config.exists(path) then
      ctx:fail("exists", "%s already exists; loam init leaves it as it is", shown(config.NAME))
    end
    if given and not host.dir(dir) then
      local ok, err = host.mkdir(dir)
      if not ok then ctx:fail("io_error", "cannot create %s", err) end
      ctx:say("created %s/", (given:gsub("/+$", "")))
    end
    for _, folder in ipairs { "models", "migrations", "seeds" } do
      local p = config.join(dir, folder)
      if host.dir(p) == nil then
        local ok, err = host.mkdir(p)
        if not ok then ctx:fail("io_error", "cannot create %s", err) end
        ctx:say("created %s/", shown(folder))
      end
    end
    local f, err = io.open(path, "w")
    if f == nil then ctx:fail("io_error", "cannot write %s", err) end
    f:write(TEMPLATE)
    f:close()
    ctx:say("created %s", shown(config.NAME))
  end,
}
