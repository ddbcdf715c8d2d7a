-- scripts/check-rockspec.lua: checks that the rockspec and the tree agree.
--
--   lua5.4 scripts/check-rockspec.lua loam-scm-1.rockspec
--
-- A "builtin" rockspec names every C source, while the Makefile finds them
-- by wildcard; this keeps the two from drifting apart.  The sources of
-- 'loam.core' must be exactly the C files of core/src/'s layer folders and bindings/
-- (without the host's main).  The Lua modules need no list: luarocks
-- installs the whole lua/ directory.  Prints what differs and exits
-- non-zero if anything does.

local specfile = assert(arg[1], "usage: check-rockspec.lua ROCKSPEC")

local spec = {}
local chunk = assert(loadfile(specfile, "t", spec))
chunk()

local problems = {}
local function problem (fmt, ...)
  problems[#problems + 1] = string.format(fmt, ...)
end

local function files (cmd)
  local list = {}
  local p = assert(io.popen(cmd))
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  table.sort(list)
  return list
end

local function exists (path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local modules = spec.build and spec.build.modules
if type(modules) ~= "table" then
  io.stderr:write(specfile, ": no build.modules table\n")
  os.exit(1)
end

local core = modules["loam.core"]
if type(core) ~= "table" or type(core.sources) ~= "table" then
  problem("loam.core has no sources list")
else
  local listed = {}
  for _, src in ipairs(core.sources) do
    listed[src] = true
    if not exists(src) then problem("loam.core source %s does not exist", src) end
  end
  local wanted = files("ls core/src/*/*.c bindings/*.c | grep -v '^bindings/loam_main\\.c$'")
  local want = {}
  for _, src in ipairs(wanted) do
    want[src] = true
    if not listed[src] then problem("%s is missing from the sources of loam.core", src) end
  end
  for src in pairs(listed) do
    if not want[src] and exists(src) then
      problem("%s is a source of loam.core but should not be", src)
    end
  end
end

if #problems > 0 then
  table.sort(problems)
  for _, p in ipairs(problems) do io.stderr:write(specfile, ": ", p, "\n") end
  os.exit(1)
end
print(specfile .. ": every C source of loam.core is listed")
