-- loam.instance: what the modules below loam.model know about a model's
-- instances.  loam.model requires loam.query and loam.relation, which
-- reach loam.loader and loam.track; those find the model of an instance
-- here, from the instance's metatable, instead of requiring loam.model.
--
--   instance.model_of(v)     the model of instance 'v', or nil

local instance = {}

function instance.model_of(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "model") or nil
end

return instance
