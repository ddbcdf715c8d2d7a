-- loam.instance: what the modules below loam.model know about a model's
-- instances, and the one place their state lives.  loam.model requires
-- loam.query and loam.relation, which reach loam.loader and loam.track;
-- those find the model of an instance here, from the instance's
-- metatable, instead of requiring loam.model.
--
-- An instance holds only its column values.  Everything else loam knows
-- of it sits in one table kept aside, weakly, in 'instance.state':
--   state[inst]              the instance's state, made by Model:_load
--   state[inst][i]           the value of the model's i-th field (M._pos)
--                            as loaded or last saved: the snapshot save
--                            compares with, an array
--   state[inst][M._peers]    the result set the instance came from
--   state[inst][rel.slot]    the value of relation 'rel', when loaded
--   state[inst][token]       eager loads recorded by loam.track while its
--                            scopes are open, under that period's token
-- One weak entry per instance: loading a row costs one insertion, and the
-- loader makes a row an instance before it sets relations on it.
--
--   instance.model_of(v)     the model of instance 'v', or nil
--   instance.state           the table above
--   instance.of(inst)        state[inst], made empty when missing (a table
--                            given the instance metatable by hand)

local instance = {}

local state = setmetatable({}, { __mode = "k" })

function instance.model_of(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "model") or nil
end

function instance.of(inst)
  local s = state[inst]
  if s == nil then
    s = {}
    state[inst] = s
  end
  return s
end

instance.state = state

return instance
