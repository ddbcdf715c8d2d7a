-- spec/modules_spec.lua: the modules of lua/loam form a tree.  Each one
-- requires what it uses at the top of its file, the requires among them
-- have no cycle, and each loads on its own in a fresh Lua state (a
-- process of the host that runs the specs), whatever was loaded before.

local helper = require "spec.helper"

local root = assert(io.popen("pwd")):read("l")
local host = os.getenv("LOAM_TEST_HOST")
if host == nil or host == "" then host = root .. "/build/bin/loam" end
local dir = root .. "/lua/loam/"

-- Quotes 's' for the shell.
local function q(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

-- The module names of lua/loam, sorted: "loam" for init.lua, "loam.x"
-- for x.lua.
local function module_names()
  local p = assert(io.popen("ls " .. q(dir)))
  local names = {}
  for file in p:lines() do
    local base = file:match("^([%w_]+)%.lua$")
    if base == "init" then
      names[#names + 1] = "loam"
    elseif base ~= nil then
      names[#names + 1] = "loam." .. base
    end
  end
  p:close()
  table.sort(names)
  return names
end

local function file_of(name)
  return dir .. (name == "loam" and "init" or name:sub(6)) .. ".lua"
end

-- The code lines of a file, comments and blank lines left out, each as
-- { line = number, text = string }.  No file of loam has a long comment
-- or a "--" inside a string on a line that requires something.
local function code_lines(path)
  local out, n = {}, 0
  for line in io.lines(path) do
    n = n + 1
    local text = line:gsub("%-%-.*$", "")
    if text:find("%S") then out[#out + 1] = { line = n, text = text } end
  end
  return out
end

-- The modules 'path' requires, in order, or raises naming the first
-- require that is not one of the lines that open the file.
local function requires_of(path)
  local deps, opening = {}, true
  for _, l in ipairs(code_lines(path)) do
    local name = l.text:match('^local [%w_]+ = require "([%w%._]+)"%s*$')
    if name ~= nil and opening then
      deps[#deps + 1] = name
    else
      opening = false
      if l.text:find("%f[%w_]require%f[^%w_]") then
        error(("%s:%d: a require below the top of the file: %s"):format(path, l.line, l.text))
      end
    end
  end
  return deps
end

-- A cycle of 'graph' (module -> modules it requires) as "a -> b -> a",
-- or nil.
local function find_cycle(graph, names)
  local state, stack = {}, {}
  local function visit(m)
    state[m] = "open"
    stack[#stack + 1] = m
    for _, d in ipairs(graph[m] or {}) do
      if state[d] == "open" then
        local from
        for i, s in ipairs(stack) do
          if s == d then from = i end
        end
        local path = table.move(stack, from, #stack, 1, {})
        path[#path + 1] = d
        return table.concat(path, " -> ")
      elseif state[d] == nil and graph[d] ~= nil then
        local c = visit(d)
        if c then return c end
      end
    end
    stack[#stack] = nil
    state[m] = "done"
    return nil
  end
  for _, m in ipairs(names) do
    if state[m] == nil then
      local c = visit(m)
      if c then return c end
    end
  end
  return nil
end

describe("the modules of lua/loam", function()
  local names = module_names()

  it("are all found", function()
    for _, m in ipairs { "loam", "loam.errors", "loam.json", "loam.types", "loam.query",
                         "loam.paginate", "loam.model", "loam.schema", "loam.instance" } do
      assert.is_truthy(table.concat(names, " "):find(m, 1, true), m)
    end
  end)

  it("require what they use at the top of their files", function()
    for _, m in ipairs(names) do
      local ok, err = pcall(requires_of, file_of(m))
      assert.is_true(ok, err)
    end
  end)

  it("form a graph without a cycle", function()
    local graph = {}
    for _, m in ipairs(names) do
      graph[m] = {}
      for _, d in ipairs(requires_of(file_of(m))) do
        if d == "loam" or d:find("^loam%.") then
          graph[m][#graph[m] + 1] = d
        end
      end
    end
    assert.is_nil(find_cycle(graph, names))
  end)

  it("finds a cycle when there is one", function()
    local graph = { a = { "b" }, b = { "c" }, c = { "a" }, d = { "a" } }
    assert.are.equal("a -> b -> c -> a", find_cycle(graph, { "a", "b", "c", "d" }))
    assert.is_nil(find_cycle({ a = { "b" }, b = {}, c = { "a", "b" } }, { "a", "b", "c" }))
  end)

  it("refuses a require below the top of a file", function()
    local path = helper.tmpname(".lua")
    local f = assert(io.open(path, "w"))
    f:write('-- a module\nlocal a = require "loam.errors"\n\nlocal function late()\n'
      .. '  return require("loam.model")\nend\n')
    f:close()
    local ok, err = pcall(requires_of, path)
    assert.is_false(ok)
    assert.matches(':5: a require below the top of the file:   return require%("loam.model"%)', err)
  end)

  it("load each in a fresh Lua state", function()
    local script = helper.tmpname(".lua")
    local f = assert(io.open(script, "w"))
    f:write(([[
package.path = %q .. ";" .. package.path
local m = require(arg[1])
assert(type(m) == "table", arg[1] .. " returned " .. type(m))
for name in pairs(package.loaded) do
  if name:find("^loam") then io.write(name, "\n") end
end
]]):format(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua"))
    f:close()
    for _, m in ipairs(names) do
      local p = assert(io.popen(("%s %s %s 2>&1"):format(q(host), q(script), q(m))))
      local out = p:read("a")
      local ok = p:close()
      assert.is_true(ok, m .. ": " .. out)
      local loaded = {}
      for name in out:gmatch("[^\n]+") do loaded[name] = true end
      assert.is_true(loaded[m], m .. ": " .. out)
    end
  end)
end)
