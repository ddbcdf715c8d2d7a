-- loam.instance: what the modules below loam.model know about a model's
-- instances, and the one place their state lives.  loam.model requires
-- loam.query and loam.relation, which reach loam.loader and loam.track;
-- those find the model of an instance here, from the instance's
-- metatable, instead of requiring loam.model.
--
-- An instance holds its column values as fields, and everything else loam
-- knows of it in one table under a key of its own (instance.KEY, a string
-- with a NUL byte, which no field name holds: loam.types refuses it in
-- identifiers), which the instance's '__pairs' skips:
--   inst[KEY]                the instance's state, made by Model:_load
--   inst[KEY][i]             the value of the model's i-th field (M._pos)
--                            as loaded or last saved: the snapshot save
--                            compares with, an array
--   inst[KEY][M._peers]      the result set the instance came from
--   inst[KEY][rel.slot]      the value of relation 'rel', when loaded
--   inst[KEY][token]         eager loads recorded by loam.track while its
--                            scopes are open, under that period's token
-- Kept in the instance rather than in a weakly keyed table aside, loading
-- a row costs one field more in a table the row already is, and the
-- collector frees the state with the instance: a weakly keyed table is an
-- ephemeron table, which every collection cycle traverses whole, and
-- whose insertions grow and rehash one table as large as all live
-- instances together.
--
--   instance.model_of(v)     the model of instance 'v', or nil
--   instance.KEY             the key of the state: inst[KEY] reads it (an
--                            instance without state, made by hand, gives
--                            nil through its __index)
--   instance.of(inst)        the state, made empty when missing (a table
--                            given the instance metatable by hand)
--   instance.pairs           the instances' '__pairs': their fields only

local instance = {}

local KEY = "\0loam.state"
instance.KEY = KEY

local rawget, rawset, next, type = rawget, rawset, next, type

function instance.model_of(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "model") or nil
end

function instance.of(inst)
  local s = rawget(inst, KEY)
  if s == nil then
    s = {}
    rawset(inst, KEY, s)
  end
  return s
end

local function fields(inst, k)
  local v
  k, v = next(inst, k)
  if k == KEY then k, v = next(inst, k) end
  return k, v
end

function instance.pairs(inst)
  return fields, inst, nil
end

return instance
