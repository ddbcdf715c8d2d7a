-- loam.project: a project as the `loam` command sees it: its config (found
-- from the current directory upward), the environment, the database URL,
-- and the models declared once in the models folder.
--
--   local project = require "loam.project"
--   local p = project.find{ env =, db =, config =, dir =, echo =, verbose = }
--   local db, models = p:open()
--
-- A model file is models/<anything>.lua (loaded in name order) returning
-- a function(db, models) that declares models on 'db' and stores them in
-- 'models' under the names scripts use:
--
--   return function(db, models)
--     models.Customer = db:model("customers", { loam.id(), ... })
--     return function()              -- optional: runs once every file
--       models.Customer:has_many("orders", models.Order)   -- has run,
--     end                                                    -- for relations
--   end
--
-- It needs the host's file system functions (loam.cli.host), so it runs
-- under the `loam` program.

local loam = require "loam"
local config = require "loam.config"
local host = require "loam.cli.host"
local log = require "loam.log"

local project = {}

local Project = {}
Project.__index = Project

local function fail(code, message)
  error(setmetatable({ code = code, message = message },
                     { __tostring = function(e) return e.code .. ": " .. e.message end }), 0)
end

-- What a URL shows in messages: its password left out.
function project.redact(url)
  return (url:gsub("^(%a[%w+.-]*://[^:/@]*):[^@/]*@", "%1:***@"))
end

-- Finds the project from 'opts.dir' (default: the current directory):
-- 'opts.config' names the config file instead (an error if it does not
-- exist); 'opts.env', 'opts.db' and 'opts.echo' are --env, --db and --echo.
function project.find(opts)
  opts = opts or {}
  local say = opts.verbose or function() end
  local cwd = opts.dir or host.getcwd()
  local path, dir
  if opts.config ~= nil then
    path = config.join(cwd, opts.config)
    if not config.exists(path) then
      fail("config_error", ("config file %s does not exist"):format(opts.config))
    end
    dir = path:match("^(.*)/[^/]*$")
    if dir == "" then dir = "/" end
  else
    path, dir = config.search(cwd)
  end
  local self = setmetatable({ cwd = cwd }, Project)
  if path ~= nil then
    say("config: %s", path)
    self.config = config.load(path, dir)
    self.root = dir
  else
    say("config: none found from %s upward (the defaults apply)", cwd)
    self.root = cwd
  end
  local source
  self.env, source = config.environment(opts.env)
  say("environment: %s (from %s)", self.env, source)
  self.db_option = opts.db
  self.echo = opts.echo
  self.say = say
  self.models_dir = self.config and self.config.models or config.join(self.root, "models")
  return self
end

-- The database URL (the migration URL with 'migration' true) and its source.
function Project:url(migration)
  return config.database_url(self.config, self.env,
                             { db = self.db_option, migration = migration, base = self.cwd })
end

-- A Database for the project's URL, logging as the config's 'log', then
-- LOAM_LOG, then --echo say (loam.log); pooled as the environment's
-- 'pool' says, except for migrations.
function Project:connect(migration)
  local url, source = self:url(migration)
  self.say("database: %s (from %s)", project.redact(url), source)
  local pool = not migration and config.pool(self.config, self.env) or nil
  local db = loam.connect(url, pool and { pool = pool } or nil)
  local settings = log.merge(self.config and self.config.log,
                             log.from_env(os.getenv("LOAM_LOG"), os.getenv("LOAM_LOG_ALLOW")))
  if self.echo then settings = log.merge(settings, { queries = true }) end
  if settings ~= nil then db:log(settings) end
  return db
end

local function lua_files(dir)
  local names = host.dir(dir)
  local files = {}
  for _, n in ipairs(names or {}) do
    if n:match("%.lua$") and n:sub(1, 1) ~= "." then files[#files + 1] = n end
  end
  table.sort(files)
  return files, names ~= nil
end

-- Declares the models of the models folder on 'db'; returns them by name.
function Project:load_models(db)
  local models, after = {}, {}
  local files, found = lua_files(self.models_dir)
  if not found then
    self.say("models: no folder %s", self.models_dir)
  end
  for _, name in ipairs(files) do
    local path = config.join(self.models_dir, name)
    local chunk, err = loadfile(path, "t")
    if chunk == nil then
      fail("syntax_error", err)
    end
    local declare = chunk()
    if type(declare) ~= "function" then
      fail("misuse", ("%s returns a %s; a model file returns a function(db, models)"):format(
        path, type(declare)))
    end
    local later = declare(db, models)
    if type(later) == "function" then after[#after + 1] = later end
  end
  for _, f in ipairs(after) do f(db, models) end
  local n = 0
  for _ in pairs(models) do n = n + 1 end
  if found then
    self.say("models: %d from %s", n, self.models_dir)
  end
  return models
end

-- The Database and the models, as `loam run` and `loam console` have them.
function Project:open()
  local db = self:connect()
  local ok, models = pcall(self.load_models, self, db)
  if not ok then
    db:close()
    error(models, 0)
  end
  return db, models
end

-- Sets the globals that `loam run` and `loam console` give their code in
-- table 'env': 'loam', 'db', 'models', and each model under its name in
-- 'models' unless a global of that name exists ('string', 'table' ...).
function project.install(env, db, models)
  env.loam, env.db, env.models = loam, db, models
  for name, m in pairs(models) do
    if type(name) == "string" and env[name] == nil then
      rawset(env, name, m)
    end
  end
end

return project
