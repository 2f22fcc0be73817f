-- Applies one consumer batch to Valkey atomically (a script runs alone).
-- ARGV[1] is a JSON payload built by aggregate.rs; integers travel as strings
-- so that HINCRBY gets them exactly. See docs/valkey-schema.md for the keys.
--
-- Fencing: each partition's range [first, next) is applied only if the stored
-- next offset is not past `first`. Otherwise another consumer (or an earlier
-- try of this batch whose reply was lost) already applied some of it, and
-- nothing at all is written: the caller re-reads the stored offsets and seeks.
local p = cjson.decode(ARGV[1])

local offsets_key = 'bf:offsets:' .. p.topic
for _, o in ipairs(p.offsets) do
  local stored = redis.call('HGET', offsets_key, o[1])
  if stored and tonumber(stored) > tonumber(o[2]) then
    return {'fenced', o[1], stored}
  end
end
for _, o in ipairs(p.offsets) do
  redis.call('HSET', offsets_key, o[1], o[3])
end

local function keep_extreme(key, candidate, better)
  local current = redis.call('HGET', key, 'centimos')
  if (not current) or better(tonumber(candidate.centimos), tonumber(current)) then
    redis.call('HSET', key, 'centimos', candidate.centimos, 'precio', candidate.precio,
      'producto', candidate.producto, 'categoria', candidate.categoria)
  end
end
local function greater(a, b) return a > b end
local function less(a, b) return a < b end

for _, c in ipairs(p.categories) do
  local key = 'bf:cat:' .. c.name
  local ventas = redis.call('HINCRBY', key, 'ventas', c.ventas)
  local unidades = redis.call('HINCRBY', key, 'unidades', c.unidades)
  local precios = redis.call('HINCRBY', key, 'precio_total_centimos', c.precio_total_centimos)
  redis.call('HINCRBY', key, 'importe_centimos', c.importe_centimos)
  local avg_price = string.format('%.2f', precios / ventas / 100)
  local avg_qty = string.format('%.4f', unidades / ventas)
  redis.call('HSET', key, 'precio_promedio', avg_price, 'cantidad_promedio', avg_qty)
  redis.call('HSET', 'bf:ventas_por_categoria', c.name, ventas)
  redis.call('HSET', 'bf:precio_promedio_por_categoria', c.name, avg_price)
  redis.call('HSET', 'bf:cantidad_promedio_por_categoria', c.name, avg_qty)
  keep_extreme(key .. ':precio:max', c.max, greater)
  keep_extreme(key .. ':precio:min', c.min, less)
  keep_extreme('bf:precio:max', c.max, greater)
  keep_extreme('bf:precio:min', c.min, less)
end

for _, d in ipairs(p.products) do
  redis.call('ZINCRBY', 'bf:productos:unidades', d[3], d[2])
  redis.call('ZINCRBY', 'bf:cat:' .. d[1] .. ':productos:unidades', d[3], d[2])
end

local tracked = ''
if p.carnet then
  local c = p.carnet
  redis.call('HSET', 'bf:carnet', 'carnet', c.carnet, 'categoria', c.categoria)
  if c.producto_fijo then
    redis.call('HSET', 'bf:carnet', 'producto', c.producto_fijo)
  elseif c.candidato then
    redis.call('HSETNX', 'bf:carnet', 'producto', c.candidato)
  end
  tracked = redis.call('HGET', 'bf:carnet', 'producto') or ''
  if tracked ~= '' then
    -- A capped stream: entry ids are sale times (ms), kept increasing across
    -- batches (a sale older than the newest entry takes the newest entry's
    -- millisecond and the next sequence number), so XRANGE reads a time series.
    local series = 'bf:carnet:precios'
    local newest_ms = 0
    local newest = redis.call('XREVRANGE', series, '+', '-', 'COUNT', 1)
    if #newest > 0 then
      newest_ms = tonumber(string.match(newest[1][1], '^(%d+)'))
    end
    for _, point in ipairs(c.puntos) do
      if point[1] == tracked then
        newest_ms = math.max(newest_ms, tonumber(point[2]))
        redis.call('XADD', series, 'MAXLEN', p.series_length,
          string.format('%d-*', newest_ms), 'precio', point[3], 'venta_id', point[4])
      end
    end
  end
end

local now = redis.call('TIME')
local now_ms = string.format('%d', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local s = p.stats
local ventas_total = redis.call('HINCRBY', 'bf:stats', 'ventas', s.ventas)
redis.call('HINCRBY', 'bf:stats', 'unidades', s.unidades)
redis.call('HINCRBY', 'bf:stats', 'importe_centimos', s.importe_centimos)
redis.call('HINCRBY', 'bf:stats', 'dead_letters', s.dead_letters)
redis.call('HSET', 'bf:stats', 'ultimo_aplicado_ms', now_ms)
local oldest_latency = '0'
if s.timestamp_min_ms then
  oldest_latency = string.format('%d', math.max(0, tonumber(now_ms) - tonumber(s.timestamp_min_ms)))
end
redis.call('XADD', 'bf:aplicado', 'MAXLEN', '~', '10000', '*',
  'ventas', s.ventas, 'unidades', s.unidades, 'dead_letters', s.dead_letters,
  'latencia_max_ms', oldest_latency)

return {'applied', tracked, now_ms, tostring(ventas_total)}
