-- loam.cli: the `loam` command line.  The host (bindings/loam_main.c)
-- hands it every command line whose first word is a command or a long
-- option; cli.main parses the global options, finds the command, parses
-- its options from the command's own declaration, runs it and turns any
-- failure into one line on stderr and an exit status:
--
--   0  success
--   1  an error: "loam: <code>: <message>" (the Lua traceback only with
--      --trace)
--   2  a usage error: "loam: usage_error: <message>", then the usage of
--      the command (or of loam) on stderr
--
-- A command is one module, loam.cli.cmd.<name>, named in the list of
-- loam.cli.commands.  It returns a table:
--
--   summary     one line for 'loam help'
--   usage       "loam NAME [options] ARGS", the synopsis
--   help        the text under the synopsis (what it does, the details)
--   options     { { "--name", "what it does" },              a flag
--                 { "--steps", "N", "what it does" }, ... }  takes a value
--   args        { min = 0, max = 1, what = "a script to run" }: how many
--               positional arguments (max = nil: any number; 'what'
--               names them when too few; default: none)
--   rest        true: options end at the first positional argument, the
--               rest is passed through (loam run SCRIPT --its-options)
--   subcommands { "up", "down", ... } instead of 'run': the next word
--               picks loam.cli.cmd.<name>.<sub>, itself a command
--   run(ctx)    does the work; returns nothing (exit 0) or an exit status
--
-- 'ctx' holds 'args' (the positional arguments), 'opts' (option values by
-- name without dashes, '-' made '_': opts.dry_run), 'global' (the global
-- options), and the helpers:
--
--   ctx:project()        the project (loam.project): its config (found
--                        from the current directory upward), the
--                        environment, the database URL
--   ctx:fail(code, fmt, ...)   raises an error the CLI prints as one line
--   ctx:usage(fmt, ...)  raises a usage error (exit 2)
--   ctx:say(fmt, ...)    a line on stdout
--   ctx:verbose(fmt, ...) a line on stderr, with --verbose only
--
-- What the module offers besides 'main':
--   cli.main(words [, registry]) -> exit status
--                        'registry' ({ names = {...}, module = fn(name) ->
--                        module name }) replaces loam.cli.commands
--   cli.error(code, message)      raises an error of the CLI
--   cli.one_line(e) -> "code: message" of any error value, on one line
--   cli.nearest(word, names)      the name a typo most likely meant
--   cli.descend(parent, word, registry) -> the command (or subcommand) spec
--   cli.help_text(registry), cli.command_help(spec)  the help texts

local core = require "loam.core"
local commands = require "loam.cli.commands"

local cli = {}

-- The global options, accepted before or after the command's name.
local GLOBAL_OPTIONS = {
  { "--env", "NAME", "the config's environment (else LOAM_ENV, else development)" },
  { "--db", "URL", "the database URL, over every other source" },
  { "--config", "FILE", "this config file instead of the one found" },
  { "--verbose", "say which config, environment and database are used" },
  { "--echo", "log each statement on stderr, values redacted" },
  { "--trace", "print the Lua traceback of an error" },
  { "--help", "show the help of loam or of the command (also -h)" },
  { "--version", "show the versions of loam, Lua, SQLite and libpq" },
}

-- The interpreter's options, which the host handles before any command.
local INTERPRETER_USAGE = [==[
usage: loam [options] [script [args]]    run a Lua script with loam built in
       loam COMMAND [options] [args]     run a command of the project

Interpreter options (as lua5.4):
  -e stat      execute string 'stat'
  -l mod       require library 'mod' into global 'mod'
  -l g=mod     require library 'mod' into global 'g'
  -v           show version information
  --           stop handling options
  -            execute stdin and stop handling options]==]

local RULE = [[
A first argument that is a word (a letter, then letters, digits, '-' or
'_') names a command, unless a file of that name exists: that file runs as
a script.  Anything with a '/' or a '.' (app.lua, ./console) is a script.

The project's config is the first loam.config.lua found from the current
directory upward.  The database URL is the first of: --db,
LOAM_DATABASE_URL, DATABASE_URL, the config's environments.<env>.url,
sqlite:loam.db beside the config (or in the current directory).  Relative
SQLite paths in the config are relative to the config's folder.]]


-- {======================================================================
-- Errors
-- =======================================================================

-- The errors of the CLI itself: a table with 'code' and 'message', like
-- loam's error objects, so one printer serves both.
local CliError = { __name = "loam.CliError" }
CliError.__tostring = function(e) return e.code .. ": " .. e.message end

function cli.error(code, message)
  error(setmetatable({ code = code, message = message }, CliError), 0)
end

local function usage_error(message, command)
  error(setmetatable({ code = "usage_error", message = message, command = command }, CliError), 0)
end

-- One line for any error value: "<code>: <where><message>", the lines of a
-- driver's message (libpq's hints) joined with spaces.
function cli.one_line(e)
  local code, text
  if type(e) == "table" and e.code ~= nil and e.message ~= nil then
    code, text = tostring(e.code), (e.where or "") .. tostring(e.message)
  else
    local s = tostring(e)
    if type(e) == "table" then
      local mt = getmetatable(e)
      if not (mt and mt.__tostring) then s = "(error object is a table value)" end
    elseif type(e) ~= "string" then
      s = ("(error object is a %s value)"):format(type(e))
    end
    code, text = "error", s
  end
  text = text:gsub("%s*\n%s*", " "):gsub("%s+$", "")
  return code .. ": " .. text
end

-- }======================================================================


-- {======================================================================
-- Commands and their help
-- =======================================================================

-- The Levenshtein distance, for "did you mean".
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- The name of 'names' nearest to 'word', when near enough to be a typo.
function cli.nearest(word, names)
  local best, bestd
  for _, n in ipairs(names) do
    local d = distance(word, n)
    if (bestd == nil or d < bestd) and d <= math.max(2, #n // 3) then
      best, bestd = n, d
    end
  end
  return best
end

local function suggestion(word, names)
  local n = cli.nearest(word, names)
  return n and ("; did you mean '%s'?"):format(n) or ""
end

-- The command declared by module 'modname', checked, so a new command
-- that lacks a part fails on its first use with the part named.
local function load_command(modname, name)
  local spec = require(modname)
  local function bad(what)
    error(("%s: %s"):format(modname, what), 0)
  end
  if type(spec) ~= "table" then bad("a command module returns a table") end
  for _, k in ipairs { "summary", "usage" } do
    if type(spec[k]) ~= "string" then bad(("'%s' must be a string"):format(k)) end
  end
  if type(spec.run) ~= "function" and type(spec.subcommands) ~= "table" then
    bad("a command has a 'run' function or a 'subcommands' list")
  end
  spec.name = name
  spec.options = spec.options or {}
  spec.args = spec.args or { min = 0, max = 0 }
  return spec
end

local function option_lines(list)
  local lines, width = {}, 0
  for _, o in ipairs(list) do
    local head = o[1] .. (#o == 3 and " " .. o[2] or "")
    o.head = head
    width = math.max(width, #head)
  end
  for _, o in ipairs(list) do
    lines[#lines + 1] = ("  %-" .. width .. "s  %s"):format(o.head, o[#o])
  end
  return table.concat(lines, "\n")
end

-- The help of loam: the usage, the commands, the global options, the rule
-- that tells a command from a script.
function cli.help_text(registry)
  registry = registry or commands
  local rows, width = {}, 0
  for _, n in ipairs(registry.names) do width = math.max(width, #n) end
  for _, n in ipairs(registry.names) do
    local spec = load_command(registry.module(n), n)
    rows[#rows + 1] = ("  %-" .. width .. "s  %s"):format(n, spec.summary)
  end
  return table.concat({
    INTERPRETER_USAGE, "",
    "Commands:", table.concat(rows, "\n"), "",
    "Options of every command:", option_lines(GLOBAL_OPTIONS), "",
    RULE, "",
    "'loam help COMMAND' or 'loam COMMAND --help' shows a command's help.",
  }, "\n") .. "\n"
end

-- The help of one command.
function cli.command_help(spec)
  local parts = { "usage: " .. spec.usage, "" }
  if spec.help then
    parts[#parts + 1] = (spec.help:gsub("\n+$", ""))
    parts[#parts + 1] = ""
  end
  if spec.subcommands then
    local rows, width = {}, 0
    for _, s in ipairs(spec.subcommands) do width = math.max(width, #s) end
    for _, s in ipairs(spec.subcommands) do
      local sub = load_command(spec.module .. "." .. s, s)
      rows[#rows + 1] = ("  %-" .. width .. "s  %s"):format(s, sub.summary)
    end
    parts[#parts + 1] = "Commands:\n" .. table.concat(rows, "\n")
    parts[#parts + 1] = ""
  end
  if #spec.options > 0 then
    parts[#parts + 1] = "Options:\n" .. option_lines(spec.options)
    parts[#parts + 1] = ""
  end
  parts[#parts + 1] = "Options of every command: --env NAME, --db URL, --config FILE, --echo,\n"
                      .. "--verbose, --trace, --help (see 'loam help')."
  return table.concat(parts, "\n") .. "\n"
end

-- }======================================================================


-- {======================================================================
-- Parsing a command line
-- =======================================================================

local function find_option(list, name)
  for _, o in ipairs(list) do
    if o[1] == name then return o end
  end
  return nil
end

local function option_names(list, extra)
  local names = {}
  for _, o in ipairs(list) do names[#names + 1] = o[1] end
  for _, o in ipairs(extra or {}) do names[#names + 1] = o[1] end
  return names
end

local function key_of(name)
  return (name:gsub("^%-%-", ""):gsub("%-", "_"))
end

-- Reads the option at words[i] into 'global' or 'opts' (whichever list
-- declares it); returns the index of the next word.
local function take_option(words, i, spec, global, opts)
  local word = words[i]
  if word == "-h" then word = "--help" end
  local name, inline = word:match("^(%-%-[^=]+)=(.*)$")
  name = name or word
  local o, into = find_option(GLOBAL_OPTIONS, name), global
  if o == nil and spec ~= nil then
    o, into = find_option(spec.options, name), opts
  end
  if o == nil then
    local names = option_names(GLOBAL_OPTIONS, spec and spec.options)
    local where = spec and (" for 'loam " .. spec.path .. "'") or ""
    usage_error(("unknown option '%s'%s%s"):format(name, where, suggestion(name, names)), spec)
  end
  if #o == 3 then
    local value = inline
    if value == nil then
      value = words[i + 1]
      if value == nil then
        usage_error(("option '%s' needs a value (%s)"):format(name, o[2]), spec)
      end
      i = i + 1
    end
    into[key_of(name)] = value
  else
    if inline ~= nil then
      usage_error(("option '%s' takes no value"):format(name), spec)
    end
    into[key_of(name)] = true
  end
  return i + 1
end

-- The command 'word' names: a command of 'registry' when 'parent' is nil,
-- else a subcommand of 'parent'.  Unknown, it is a usage error with the
-- nearest name.
function cli.descend(parent, word, registry)
  local names = parent and parent.subcommands or registry.names
  for _, n in ipairs(names) do
    if n == word then
      local modname = parent and (parent.module .. "." .. n) or registry.module(n)
      local spec = load_command(modname, n)
      spec.module = modname
      spec.path = parent and (parent.path .. " " .. n) or n
      return spec
    end
  end
  if parent and not parent.subcommands then
    usage_error(("'loam %s' has no commands"):format(parent.path), parent)
  end
  local what = parent and ("'loam %s' command"):format(parent.path) or "command"
  local hint = suggestion(word, names)
  if parent == nil and word:find("[/.]") then  -- a script after global options
    hint = ("; to run a script with the project, 'loam run %s'"):format(word)
  end
  usage_error(("unknown %s '%s'%s"):format(what, word, hint), parent)
end

-- Splits 'words' into the global options, the command (a spec, or nil),
-- its options and its positional arguments.
local function parse(words, registry)
  local global, opts, args = {}, {}, {}
  local spec = nil
  local i, rest = 1, false
  while i <= #words do
    local w = words[i]
    if rest then
      args[#args + 1] = w
      i = i + 1
    elseif w == "--" then
      rest = true
      i = i + 1
    elseif w:sub(1, 1) == "-" and w ~= "-" then
      i = take_option(words, i, spec, global, opts)
    elseif spec == nil or (spec.subcommands and #args == 0 and not global.help) then
      spec = cli.descend(spec, w, registry)
      i = i + 1
    else
      args[#args + 1] = w
      if spec.rest then rest = true end
      i = i + 1
    end
  end
  return global, spec, opts, args
end

-- }======================================================================


-- {======================================================================
-- Running a command
-- =======================================================================

local Context = {}
Context.__index = Context

function Context:fail(code, fmt, ...)
  cli.error(code, fmt:format(...))
end

function Context:usage(fmt, ...)
  usage_error(fmt:format(...), self.spec)
end

function Context:say(fmt, ...)
  io.stdout:write(fmt:format(...), "\n")
end

function Context:verbose(fmt, ...)
  if self.global.verbose then
    io.stderr:write("loam: ", fmt:format(...), "\n")
  end
end

-- The project: found and loaded once, on first use, so commands that need
-- no config ('help', 'init') never read one.
function Context:project()
  if self._project == nil then
    local project = require "loam.project"
    self._project = project.find {
      env = self.global.env, db = self.global.db, config = self.global.config,
      echo = self.global.echo, verbose = function(...) self:verbose(...) end,
    }
  end
  return self._project
end

local function check_args(spec, args)
  local a = spec.args
  if #args < (a.min or 0) then
    usage_error(("'loam %s' needs %s"):format(spec.path, a.what or "more arguments"), spec)
  end
  if a.max ~= nil and #args > a.max then
    usage_error(("'loam %s' takes %s, not '%s'"):format(
      spec.path, a.max == 0 and "no arguments" or ("at most %d argument%s"):format(
        a.max, a.max == 1 and "" or "s"), args[a.max + 1]), spec)
  end
end

local function print_usage_error(e, registry)
  io.stderr:write("loam: ", cli.one_line(e), "\n")
  if e.command then
    io.stderr:write("usage: ", e.command.usage, "\n",
                    ("Run 'loam %s --help' for its options.\n"):format(e.command.path))
  else
    io.stderr:write("usage: loam [options] [script [args]]\n",
                    "       loam COMMAND [options] [args]\n",
                    "Commands: ", table.concat(registry.names, ", "), ".\n",
                    "Run 'loam help' for more.\n")
  end
  return 2
end

-- Runs the command line 'words' (a list of strings, without the program's
-- name) and returns the exit status.  'registry' replaces the list of
-- commands (loam.cli.commands), for hosts that bring their own.
function cli.main(words, registry)
  registry = registry or commands
  local trace = false
  for _, w in ipairs(words) do
    if w == "--" then break end
    if w == "--trace" then trace = true end
  end
  local traceback
  local ok, status = xpcall(function()
    if #words == 0 then
      usage_error("no command or script given")
    end
    if #words == 1 and (words[1] == "-e" or words[1] == "-l") then
      usage_error(("option '%s' needs an argument"):format(words[1]))
    end
    local global, spec, opts, args = parse(words, registry)
    if global.version then
      local host = package.loaded["loam.cli.host"] or (pcall(require, "loam.cli.host")
                   and require "loam.cli.host")
      io.stdout:write("loam ", core.version, "\n")
      if host then io.stdout:write(host.versions, "\n") end
      return 0
    end
    if spec == nil then
      if global.help then
        io.stdout:write(cli.help_text(registry))
        return 0
      end
      usage_error("no command given")
    end
    if global.help then
      io.stdout:write(cli.command_help(spec))
      return 0
    end
    if spec.subcommands then
      usage_error(("'loam %s' needs a command: %s"):format(
        spec.path, table.concat(spec.subcommands, ", ")), spec)
    end
    check_args(spec, args)
    local ctx = setmetatable({ spec = spec, global = global, opts = opts, args = args,
                               registry = registry }, Context)
    return spec.run(ctx) or 0
  end, function(e)
    traceback = debug.traceback(nil, 2)
    return e
  end)
  io.stdout:flush()
  if ok then
    return status
  end
  local e = status
  if type(e) == "table" and e.code == "usage_error" and getmetatable(e) == CliError then
    return print_usage_error(e, registry)
  end
  io.stderr:write("loam: ", cli.one_line(e), "\n")
  if trace then
    io.stderr:write(traceback, "\n")
  end
  return 1
end

-- }======================================================================

return cli
