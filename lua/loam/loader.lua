-- loam.loader: loading relations, and the values loaded, kept in the
-- instances' state.
--
-- It runs the plans of loam.include: the rows of a query come back with
-- their joined relations in extra columns, which are split out into
-- instances of their own; the batched relations below then load level by
-- level, every relation of one level in ONE db:load_batch call (pipelined
-- on PostgreSQL), one statement per relation whatever the number of
-- parents.  Parents that hold a relation already are skipped.  Each load
-- sets the inverse relation when it is to-one, and tells loam.track.
--
-- Loaded values live in the instance's state (loam.instance), never among
-- its fields: columns stay plain fields, to_table and save never see
-- relations, and nothing a table of columns holds can clash with them.  A
-- to-one relation loaded with no row holds NONE.  Every instance also
-- remembers the result set it came from, so that a lazy read loads the
-- relation for all of its peers in one query, and a strict read's error
-- can name the include to add.  loam.relation reads both; only this
-- module sets them.
--
-- The module: loader.load(state, rows) (a query's rows made instances, with
-- their includes), loader.adopt(rows, state), loader.preload(list, ...),
-- loader.load_peers(inst, rel, set) (a lazy read), and the marker
-- loader.NONE.

local core = require "loam.core"
local errors = require "loam.errors"
local types = require "loam.types"
local expr = require "loam.expr"
local track = require "loam.track"
local include = require "loam.include"
local instance = require "loam.instance"

local null = core.null
local misuse = errors.misuse
local model_of = instance.model_of
local inverse_of = include.inverse_of
local plan_of = include.plan_of
local spec_of = include.spec_of

local loader = {}


-- {======================================================================
-- State kept in instances
-- =======================================================================

-- The state of each instance (loam.instance) holds its loaded relations,
-- each in the relation's slot (rel.slot).  A to-one relation loaded with
-- no row holds NONE, so "loaded, nothing there" differs from "not
-- loaded".  At M._peers it holds the result set it came from: { list =
-- weak array of the instances, n = count, root = table name of the
-- query's model, path = relation names from there, lazy = the query's
-- lazy flag or nil }.  The
-- list is weak so that one instance kept alive does not keep its peers.
-- Rows become instances (Model:_load, which makes their state) before
-- relations are set on them.
local STATE = instance.KEY
local state_of = instance.of
local NONE = setmetatable({}, { __name = "loam.none" })
local WEAK = { __mode = "v" }

-- Sets relation 'rel' of 'inst'.  An instance made by hand (given the
-- metatable, never loaded) has no state yet.
local function set_value(inst, rel, v)
  local t = inst[STATE]
  if t == nil then t = state_of(inst) end
  t[rel.slot] = v
end

local function is_loaded(inst, rel)
  local t = inst[STATE]
  return t ~= nil and t[rel.slot] ~= nil
end

-- }======================================================================


-- {======================================================================
-- Loading
-- =======================================================================

-- A value to tell rows of one model apart by their primary key (or nil
-- when the model has none).
local function identity(row, pk)
  if #pk == 1 then return row[pk[1]] end
  if #pk == 0 then return nil end
  local parts = {}
  for i, c in ipairs(pk) do
    local v = row[c]
    parts[i] = (math.type(v) or type(v)) .. ":" .. tostring(v)
  end
  return table.concat(parts, "\0")
end

-- Per-load state of the relations a plan joins: for each joined relation,
-- the instances made (by identity), the parents it was set on, and the
-- members of each parent's collection.
local function joined_state(plan)
  local st = {}
  for i = 1, #plan.joined do
    st[i] = { made = {}, children = {}, parents = {}, seen_parent = {}, members = {} }
  end
  return st
end

-- Moves the columns of joined relation 'j' out of 'row': the related row,
-- or nil when the LEFT JOIN matched none (its key columns are NULL).
local function extract(row, j)
  local child = {}
  local names, aliases = j.names, j.aliases
  for k = 1, #names do
    local a = aliases[k]
    child[names[k]] = row[a]
    row[a] = nil
  end
  for _, c in ipairs(j.match) do
    if child[c] ~= null then return child end
  end
  return nil
end

-- Splits the rows of one statement (or of one parent's group) with 'plan'
-- and returns the distinct instances of the plan's model: 'rows' itself,
-- loaded in place, when nothing is joined.  'firsts' maps the identity of
-- a repeated row (a joined collection repeats its parent) to the first
-- row, which becomes the instance; without it, the rows are one group of
-- their own.
local function split(plan, rows, st, firsts)
  local M, joined = plan.model, plan.joined
  if #joined == 0 then
    return M:_load_all(rows)
  end
  local out = {}
  local pk = M.primary_key
  local coll = plan.collection
  if coll then firsts = firsts or {} end
  local got = {}
  for _, row in ipairs(rows) do
    local owner, first = row, true
    if coll then
      local id = identity(row, pk)
      if id == nil then
        misuse("include: the joined collection needs the primary key of %s (%s) among the "
          .. "selected columns", M.table, table.concat(pk, ", "))
      end
      owner = firsts[id]
      if owner == nil then
        firsts[id] = row
        owner = row
      else
        first = false
      end
    end
    -- The joined columns leave the row before it becomes an instance, and
    -- it becomes one before relations are set on it.
    for i = 1, #joined do got[i] = extract(row, joined[i]) or false end
    if first then
      M:_load(row)
      out[#out + 1] = row
    end
    for i = 1, #joined do
      local j, s = joined[i], st[i]
      local child = got[i] or nil
      if child ~= nil then
        local id = identity(child, j.model.primary_key)
        local made = id ~= nil and s.made[id]
        if made then
          child = made
        else
          j.model:_load(child)
          if id ~= nil then s.made[id] = child end
          s.children[#s.children + 1] = child
        end
      end
      got[i] = child
      local parent
      if j.parent == 0 then parent = owner else parent = got[j.parent] end
      if parent ~= nil then
        local rel = j.node.rel
        if not s.seen_parent[parent] then
          s.seen_parent[parent] = true
          s.parents[#s.parents + 1] = parent
          if j.collection then
            set_value(parent, rel, {})
            s.members[parent] = {}
          end
        end
        if j.collection then
          if child ~= nil and not s.members[parent][child] then
            s.members[parent][child] = true
            local list = parent[STATE][rel.slot]
            list[#list + 1] = child
          end
        else
          set_value(parent, rel, child or NONE)
        end
      end
    end
  end
  return out
end

-- Remembers that the instances of 'list' came from one result set, for
-- lazy loading and for the strict error's advice.  'info' holds root, path
-- and lazy.
-- 'new_set' makes the set, or nil when there is nothing to remember:
-- loader.load gives it to Model:_load_all, which stores it as it loads.
local function new_set(M, list, info)
  local n = #list
  if n == 0 or M == nil or next(M.relations) == nil then return nil end
  return { list = table.move(list, 1, n, 1, setmetatable({}, WEAK)), n = n,
           root = info.root, path = info.path, lazy = info.lazy }
end

local function remember(list, info)
  local M = model_of(list[1])
  local set = new_set(M, list, info)
  if set == nil then return end
  local slot = M._peers
  for i = 1, set.n do list[i][STATE][slot] = set end
end

-- Sets relation 'rel' back on the children of each parent, when the
-- inverse is to-one: a to-many inverse cannot be set from a subset.
local function set_inverse(rel, parents)
  local inv = inverse_of(rel)
  if inv == nil or not inv.one then return end
  for _, p in ipairs(parents) do
    local v = p[STATE][rel.slot]
    if rel.one then
      if v ~= NONE then set_value(v, inv, p) end
    else
      for _, c in ipairs(v) do set_value(c, inv, p) end
    end
  end
end

local function child_info(info, name)
  local path = table.move(info.path, 1, #info.path, 1, {})
  path[#path + 1] = name
  return { root = info.root, path = path, lazy = info.lazy }
end

-- After 'node' was loaded for 'parents' (its values set): remembers the
-- children as a set, sets the inverse, tells the tracker, and queues the
-- batched relations below it.  Joined ones were loaded with it.
local function finish(node, parents, children, info, queue)
  local ci = child_info(info, node.name)
  remember(children, ci)
  set_inverse(node.rel, parents)
  track.eager_loaded(parents, node.name)
  for _, c in ipairs(node.children) do
    if c.strategy ~= "joined" then
      queue[#queue + 1] = { node = c, parents = children, info = ci }
    end
  end
end

-- Finishes every joined relation of 'plan' after a split.
local function finish_joined(plan, st, info, queue)
  -- The info of each joined relation follows its place in the plan.
  local infos = { [0] = info }
  for i, j in ipairs(plan.joined) do
    local pinfo = infos[j.parent]
    infos[i] = child_info(pinfo, j.node.name)
    finish(j.node, st[i].parents, st[i].children, pinfo, queue)
  end
end

-- The value of key column 'c' of relation 'rel' on instance 'p', checked as
-- the model checks values: one the user assigned may be of the wrong type.
-- A numeric value travels as a number, which compares by value with any
-- numeric column on both backends; where numeric columns keep every digit
-- (PostgreSQL), against a numeric column ('exact'), as its decimal text,
-- which the typed key list binds as numeric and the loader matches by
-- value, every digit kept.
local function key_value(p, rel, c, exact)
  local v = rawget(p, c)
  if v == nil then
    local M = rel.model
    misuse("%s.%s needs column %s, which the instance does not hold (select it to load %s)",
      M.table, rel.name, c, rel.name)
  end
  if v == null then return v end
  local M = rel.model
  local f = M._coerce[c]
  local out = f and f(v)
  -- The model's own call raises its error for an unknown column or a bad value.
  if out == nil then out = M:coerce(c, v) end
  if exact[c] == false then return types.numeric_key(out) end
  return out
end

-- For each owner key column of 'rel' declared numeric, whether its keys
-- travel as exact numeric text on 'db' (see 'key_value'), from the key
-- types of its 'spec': where the backend's numeric columns keep every
-- digit.  Other columns are absent.
local function exact_keys(db, rel, spec)
  local exact = {}
  local exact_numeric = db:exact_numeric()
  local map = rel.model.column_map
  for i, c in ipairs(rel.owner_keys) do
    local decl = map[c]
    if decl ~= nil and decl.type == "numeric" then
      exact[c] = exact_numeric and spec.key_types[i] == "numeric"
    end
  end
  return exact
end

-- The key of relation 'rel' on instance 'p': a value, or an array for a
-- composite key.
local function key_of(p, rel, exact)
  local cols = rel.owner_keys
  if #cols == 1 then return key_value(p, rel, cols[1], exact) end
  local t = {}
  for i, c in ipairs(cols) do t[i] = key_value(p, rel, c, exact) end
  return t
end

local function has_null(k)
  if k == null then return true end
  if type(k) == "table" then
    for _, v in ipairs(k) do
      if v == null then return true end
    end
  end
  return false
end

-- Sets the values of one batched task from its groups (nil: nothing was
-- sent, every key held a NULL).  Returns the distinct children: equal keys
-- share one group, which is made into instances once.
local function assign(task, groups)
  local node, need, plan = task.node, task.need, task.plan
  local rel = node.rel
  local one = rel.one
  local st, firsts = task.st, {}
  local done, children = {}, {}
  if one and task.spec_one then
    local M, nothing_joined = plan.model, #plan.joined == 0
    for i, p in ipairs(need) do
      local g = groups and groups[i]
      local inst = NONE
      if g ~= nil then
        inst = done[g]
        if inst == nil then
          if nothing_joined then
            M:_load(g)  -- what 'split' does with no joined relation
            inst = g
          else
            inst = split(plan, { g }, st, firsts)[1]
          end
          done[g] = inst
          children[#children + 1] = inst
        end
      end
      set_value(p, rel, inst)
    end
    return children
  end
  for i, p in ipairs(need) do
    local g = groups and groups[i]
    local list = g and done[g]
    if g == nil then
      list = {}
    elseif list == nil then
      list = split(plan, g, st)
      done[g] = list
      table.move(list, 1, #list, #children + 1, children)
    else
      list = table.move(list, 1, #list, 1, {})  -- each parent its own array
    end
    if one then
      set_value(p, rel, list[1] or NONE)
    else
      set_value(p, rel, list)
    end
  end
  return children
end

-- Adds to 'children' those that parents skipped by the load (they held
-- the relation already) hold.
local function loaded_children(parents, need, rel, children)
  local skip, have = {}, {}
  for _, p in ipairs(need) do skip[p] = true end
  for _, c in ipairs(children) do have[c] = true end
  for _, p in ipairs(parents) do
    if not skip[p] then
      local v = p[STATE][rel.slot]
      local list = type(v) == "table" and getmetatable(v) == nil and v or { v }
      for _, c in ipairs(list) do
        if c ~= NONE and not have[c] then
          have[c] = true
          children[#children + 1] = c
        end
      end
    end
  end
end

-- Loads the queued batched relations level by level: every relation of one
-- level in one db:load_batch call.  Parents that hold the relation already
-- are skipped, and their children still get the levels below.
local function run(db, queue)
  while #queue > 0 do
    local specs, tasks = {}, queue
    queue = {}
    for _, task in ipairs(tasks) do
      local node, rel = task.node, task.node.rel
      local parents, need, keys, seen, sent = {}, {}, {}, {}, false
      local spec = spec_of(node)
      local exact = exact_keys(db, rel, spec)
      for _, p in ipairs(task.parents) do
        if not seen[p] then
          seen[p] = true
          parents[#parents + 1] = p
          local t = p[STATE]
          if t == nil or t[rel.slot] == nil then
            local k = key_of(p, rel, exact)
            need[#need + 1], keys[#keys + 1] = p, k
            sent = sent or not has_null(k)
          end
        end
      end
      task.parents, task.need = parents, need
      task.plan = plan_of(node, rel.target)
      task.st = joined_state(task.plan)
      if sent then
        task.spec_one = spec.one
        specs[#specs + 1] = { query = spec.query, key = spec.key, keys = keys, one = spec.one,
                              limit_per_key = spec.limit_per_key, key_types = spec.key_types,
                              key_indexed = spec.key_indexed }
        task.index = #specs
      else
        task.spec_one = true
      end
    end
    local results = #specs > 0 and db:load_batch(specs) or {}
    for _, task in ipairs(tasks) do
      local groups = task.index and results[task.index]
      local children = assign(task, groups)
      if #task.need < #task.parents then
        loaded_children(task.parents, task.need, task.node.rel, children)
      end
      finish(task.node, task.parents, children, task.info, queue)
      finish_joined(task.plan, task.st, child_info(task.info, task.node.name), queue)
    end
  end
end

-- The info of the result set of query state 's'.
local function root_info(s)
  return { root = s.model.table, path = {}, lazy = s.lazy }
end

-- Makes the rows of query state 's' (a model query) into instances: splits
-- the joined relations out, remembers the set, loads the batched ones.
function loader.load(s, rows)
  local M, tree = s.model, s.includes
  if tree == nil then
    return M:_load_all(rows, new_set(M, rows, root_info(s)))
  end
  local plan = plan_of(tree, M)
  local st = joined_state(plan)
  local info = root_info(s)
  local out
  if #plan.joined == 0 then
    out = M:_load_all(rows, new_set(M, rows, info))
  else
    out = split(plan, rows, st)
    remember(out, info)
  end
  local queue = {}
  for _, c in ipairs(tree.children) do
    if c.strategy ~= "joined" then
      queue[#queue + 1] = { node = c, parents = out, info = info }
    end
  end
  finish_joined(plan, st, info, queue)
  run(s.db, queue)
  return out
end

-- Remembers the instances 'rows' of query state 's' as one result set (for
-- rows loaded one by one, which carry the query's lazy flag).
function loader.adopt(rows, s)
  remember(rows, root_info(s))
  return rows
end

-- loam.preload(list, ...): loads relations for instances in hand, as
-- include would.  A joined relation at the top has no query to join into
-- and loads batched.
function loader.preload(list, ...)
  if type(list) ~= "table" or getmetatable(list) ~= nil then
    misuse("preload: expected an array of instances, got %s", errors.show(list))
  end
  local n = #list
  local M = n > 0 and model_of(list[1])
  if n > 0 and not M then
    misuse("preload: item #1 is not an instance of a model, got %s", errors.show(list[1]))
  end
  local meta = M and M._meta
  for i = 2, n do
    if getmetatable(list[i]) ~= meta then
      misuse("preload: item #%d is not an instance of %s, got %s", i, M.table,
        errors.show(list[i]))
    end
  end
  if n == 0 then
    if select("#", ...) == 0 then misuse("preload: no relations given") end
    return list
  end
  local tree = include.tree(M, nil, ...)
  local first = list[1][STATE]
  first = first and first[M._peers]
  local info = { root = first and first.root or M.table, path = first and first.path or {},
                 lazy = first and first.lazy }
  local queue = {}
  for _, c in ipairs(tree.children) do
    queue[#queue + 1] = { node = c, parents = list, info = info }
  end
  run(M.db, queue)
  return list
end

-- }======================================================================



-- {======================================================================
-- Lazy loading
-- =======================================================================

-- Loads 'rel' for every live instance of the set 'inst' came from, 'set'
-- (peers[inst], or nil): the first lazy read of a relation loads it for
-- the whole result set in one query.
function loader.load_peers(inst, rel, set)
  local M = rel.model
  local list = { inst }
  if set ~= nil then
    local l = set.list
    for i = 1, set.n do
      local p = l[i]
      if p ~= nil and p ~= inst and not is_loaded(p, rel) and getmetatable(p) == M._meta then
        list[#list + 1] = p
      end
    end
  end
  local node = rel._lazy_node
  if node == nil then
    inverse_of(rel)
    node = { rel = rel, name = rel.name, strategy = "batched", order = {}, children = {},
             given = {} }
    rel._lazy_node = node
  end
  local info = { root = set and set.root or M.table, path = set and set.path or {},
                 lazy = set and set.lazy }
  run(M.db, { { node = node, parents = list, info = info } })
end

-- }======================================================================

loader.NONE = NONE

return loader
