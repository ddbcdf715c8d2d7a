-- loam.config: the project config file, loam.config.lua, and where the
-- database URL comes from.
--
-- The file is Lua made of plain assignments (a chunk that returns a table
-- of the same keys is read the same way):
--
--   models = "models"            folders, relative to the config's folder
--   migrations = "migrations"    (these are the defaults)
--   seeds = "seeds"
--   log = { queries = true, slow_ms = 200, allow = { "users.email" } }
--                                the query and slow-query logs (loam.log)
--   environments = {
--     development = { url = "sqlite:db/development.db" },
--     production = { url = os.getenv("APP_DATABASE_URL"),
--                    migration_url = os.getenv("APP_OWNER_URL"),
--                    pool = { size = 8 } },
--   }
--
-- An environment's 'pool' (true, or the options of loam.connect's 'pool')
-- makes the runtime Database pooled, whichever URL is chosen; migrations
-- always run on a connection of their own.
--
-- An unknown key is an error naming it, the file and line, and the valid
-- keys; so is a syntax or runtime error of the file.  Relative SQLite
-- paths in the config are relative to the config's folder.
--
--   config.NAME                         "loam.config.lua"
--   config.search(dir) -> path, folder | nil
--                                       the first config from 'dir' upward
--   config.join(dir, path) -> path      'path' from folder 'dir', made plain
--   config.exists(path) -> boolean      a readable file
--   config.load(path, dir) -> cfg       read and checked; 'dir' is the
--                                       config's folder, absolute
--   config.environment(env) -> name, source
--                                       'env' (--env), LOAM_ENV, "development"
--   config.resolve_sqlite(url, dir) -> url
--                                       a relative SQLite path made relative
--                                       to 'dir'
--   config.database_url(cfg, env, opts) -> url, source
--                                       opts: db (--db), migration (true for
--                                       the migration URL), base (the folder
--                                       the default resolves against), getenv
--   config.pool(cfg, env) -> options | nil
--                                       the environment's 'pool'

local log = require "loam.log"

local config = {}

config.NAME = "loam.config.lua"
config.DEFAULT_URL = "sqlite:loam.db"

local KEYS = { "environments", "log", "migrations", "models", "seeds" }
local ENV_KEYS = { "migration_url", "pool", "url" }
local FOLDERS = { models = "models", migrations = "migrations", seeds = "seeds" }

local function set_of(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end
local VALID, ENV_VALID = set_of(KEYS), set_of(ENV_KEYS)

local function fail(message)
  error(setmetatable({ code = "config_error", message = message },
                     { __tostring = function(e) return e.code .. ": " .. e.message end }), 0)
end

-- Whether a file at 'path' can be opened for reading.
function config.exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local function parent(dir)
  if dir == "/" then return nil end
  local p = dir:match("^(.*)/[^/]*$")
  return (p == nil or p == "") and "/" or p
end

-- 'path' taken from folder 'dir' (absolute), without '.' and '..' parts,
-- so messages name files plainly.
function config.join(dir, path)
  local full = path:sub(1, 1) == "/" and path or (dir .. "/" .. path)
  local parts = {}
  for part in full:gmatch("[^/]+") do
    if part == ".." then
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return "/" .. table.concat(parts, "/")
end

-- The first loam.config.lua in 'dir' or a folder above it, up to the root.
function config.search(dir)
  while dir ~= nil do
    local path = config.join(dir, config.NAME)
    if config.exists(path) then
      return path, dir
    end
    dir = parent(dir)
  end
  return nil
end

-- {======================================================================
-- Reading the file
-- =======================================================================

local function unknown(name, valid_list, where)
  return ("%sunknown key '%s' (valid keys: %s)"):format(where, tostring(name),
                                                       table.concat(valid_list, ", "))
end

local function check_environments(path, envs)
  if type(envs) ~= "table" then
    fail(("%s: 'environments' must be a table of environments, not a %s"):format(path, type(envs)))
  end
  for name, e in pairs(envs) do
    if type(name) ~= "string" then
      fail(("%s: environment names must be strings"):format(path))
    end
    if type(e) ~= "table" then
      fail(("%s: environment '%s' must be a table, not a %s"):format(path, name, type(e)))
    end
    for k, v in pairs(e) do
      if not ENV_VALID[k] then
        fail(unknown(k, ENV_KEYS, path .. ": environment '" .. name .. "': "))
      end
      if k == "pool" then
        if v ~= true and type(v) ~= "table" then
          fail(("%s: environment '%s': 'pool' must be true or a table of pool options, not a %s")
            :format(path, name, type(v)))
        end
      elseif type(v) ~= "string" then
        fail(("%s: environment '%s': '%s' must be a string, not a %s"):format(path, name, k, type(v)))
      end
    end
  end
end

-- Reads and checks the config at 'path', whose folder is 'dir'.
function config.load(path, dir)
  local values = {}
  -- Assignments go through '__newindex', so an unknown key fails at its
  -- own line; reads see the standard globals (os.getenv, say).
  local env = setmetatable({}, {
    __index = function(_, k)
      if values[k] ~= nil then return values[k] end
      return _G[k]
    end,
    __newindex = function(_, k, v)
      if not VALID[k] then
        error(unknown(k, KEYS, ""), 2)
      end
      values[k] = v
    end,
  })
  local chunk, err = loadfile(path, "t", env)
  if chunk == nil then
    fail(err)
  end
  local ok, result = pcall(chunk)
  if not ok then
    fail(type(result) == "string" and result or (path .. ": " .. tostring(result)))
  end
  if type(result) == "table" then
    for k, v in pairs(result) do
      if not VALID[k] then fail(unknown(k, KEYS, path .. ": ")) end
      values[k] = v
    end
  elseif result ~= nil then
    fail(("%s: the config returns a %s (return nothing, or a table of %s)"):format(
      path, type(result), table.concat(KEYS, ", ")))
  end
  local cfg = { path = path, dir = dir, environments = {} }
  for key, default in pairs(FOLDERS) do
    local v = values[key]
    if v ~= nil and type(v) ~= "string" then
      fail(("%s: '%s' must be a folder name (a string), not a %s"):format(path, key, type(v)))
    end
    cfg[key] = config.join(dir, v or default)
  end
  if values.log ~= nil then
    -- Checked now, so a wrong setting names the config file before anything runs.
    local ok, e = pcall(log.check, values.log, "log")
    if not ok then
      fail(("%s: %s"):format(path, type(e) == "table" and e.message or tostring(e)))
    end
    cfg.log = values.log
  end
  if values.environments ~= nil then
    check_environments(path, values.environments)
    cfg.environments = values.environments
    cfg.declares_environments = true
  end
  return cfg
end

-- }======================================================================


-- {======================================================================
-- The environment and the database URL
-- =======================================================================

local function nonempty(v)
  if v ~= nil and v ~= "" then return v end
  return nil
end

function config.environment(env, getenv)
  getenv = getenv or os.getenv
  if nonempty(env) then return env, "--env" end
  local v = nonempty(getenv("LOAM_ENV"))
  if v then return v, "LOAM_ENV" end
  return "development", "the default"
end

-- 'url' with a relative SQLite path made relative to 'dir'.  The folder
-- is percent-encoded where a URL would read it otherwise.
function config.resolve_sqlite(url, dir)
  local rest = url:match("^sqlite:(.*)$")
  if rest == nil or rest == "" or rest:sub(1, 1) == "/" or rest:match("^:memory:") then
    return url
  end
  local prefix = dir:gsub("[%%?#]", function(c) return ("%%%02X"):format(c:byte()) end)
  return "sqlite:" .. config.join(prefix, rest)
end

function config.pool(cfg, env)
  if cfg == nil or not cfg.declares_environments then return nil end
  local e = cfg.environments[env]
  return e and e.pool
end

-- The database URL and where it came from:
--   runtime:    --db, LOAM_DATABASE_URL, DATABASE_URL, the environment's
--               'url' in the config, the default sqlite:loam.db
--   migration:  --db, LOAM_MIGRATION_DATABASE_URL, LOAM_DATABASE_URL,
--               DATABASE_URL, the environment's 'migration_url', then its
--               'url', the default
-- The default resolves against the config's folder (opts.base without a
-- config), URLs from the command line and the environment as given.
function config.database_url(cfg, env, opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  if nonempty(opts.db) then return opts.db, "--db" end
  local vars = { "LOAM_DATABASE_URL", "DATABASE_URL" }
  if opts.migration then table.insert(vars, 1, "LOAM_MIGRATION_DATABASE_URL") end
  for _, var in ipairs(vars) do
    local v = nonempty(getenv(var))
    if v then return v, var end
  end
  if cfg ~= nil and cfg.declares_environments then
    local e = cfg.environments[env]
    if e == nil then
      local names = {}
      for n in pairs(cfg.environments) do names[#names + 1] = n end
      table.sort(names)
      fail(("environment '%s' is not declared in %s (declared: %s)"):format(
        env, cfg.path, #names > 0 and table.concat(names, ", ") or "none"))
    end
    local keys = opts.migration and { "migration_url", "url" } or { "url" }
    for _, k in ipairs(keys) do
      if nonempty(e[k]) then
        return config.resolve_sqlite(e[k], cfg.dir),
               ("environments.%s.%s of %s"):format(env, k, cfg.path)
      end
    end
    -- A declared environment never falls back to the default database:
    -- 'url = os.getenv("X")' with X unset would write to a stray file.
    fail(("environment '%s' of %s has no url (an unset variable?)"):format(env, cfg.path))
  end
  local base = cfg and cfg.dir or opts.base
  local url = base and config.resolve_sqlite(config.DEFAULT_URL, base) or config.DEFAULT_URL
  return url, "the default"
end

-- }======================================================================

return config
