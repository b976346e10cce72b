/**
 * The Lua scripts of the Redis job store (./redis_store.ts): every change
 * that must be checked against a job's current state runs as one script,
 * so no other server can change the job in between.
 *
 * @module
 */

/** The consumer group of every API's stream. */
export const GROUP = "runners";
/** The consumer that reclaims entries of dead runners. */
export const REAPER = "reaper";

/** Takes the next entry whose job is still queued; skips (acks) cancelled ones. */
export const LEASE = `
for i = 1, 100 do
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
  if not r then return false end
  local entry = r[1][2][1]
  local id = entry[2][2]
  local key = ARGV[4] .. id
  if redis.call('HGET', key, 'status') == 'in_queue' then
    redis.call('HSET', key, 'status', 'in_progress', 'owner', ARGV[2], 'started_at', ARGV[3])
    redis.call('HINCRBY', key, 'attempts', 1)
    return {entry[1], id}
  end
  redis.call('XACK', KEYS[1], ARGV[1], entry[1])
  redis.call('XDEL', KEYS[1], entry[1])
end
return false
`;

/** Renews a lease: the entry is still pending to this owner and the job runs; resets its idle time. */
export const RENEW = `
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] or redis.call('HGET', KEYS[2], 'status') ~= 'in_progress' then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
`;

/**
 * Ends a run. KEYS: stream, job, webhooks set. ARGV: group, owner, entry,
 * kind, now, max attempts, ttl ms, error, result body, type, status.
 * Returns 1 when the job became final, 2 when requeued, 0 when not held.
 */
export const FINISH = `
local key = KEYS[2]
if redis.call('HGET', key, 'status') ~= 'in_progress' or redis.call('HGET', key, 'owner') ~= ARGV[2] then
  return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
local kind = ARGV[4]
local attempts = tonumber(redis.call('HGET', key, 'attempts'))
if kind == 'released' or (kind == 'crashed' and attempts < tonumber(ARGV[6])) then
  if kind == 'released' then redis.call('HINCRBY', key, 'attempts', -1) end
  redis.call('HSET', key, 'status', 'in_queue', 'owner', '', 'error', ARGV[8])
  redis.call('XADD', KEYS[1], '*', 'id', redis.call('HGET', key, 'id'))
  return 2
end
if kind == 'completed' then
  redis.call('HSET', key, 'status', 'completed', 'res_body', ARGV[9], 'res_type', ARGV[10], 'res_status', ARGV[11])
else
  redis.call('HSET', key, 'status', 'failed', 'error', ARGV[8])
end
redis.call('HSET', key, 'owner', '', 'finished_at', ARGV[5])
redis.call('PEXPIRE', key, ARGV[7])
if redis.call('HEXISTS', key, 'webhook_url') == 1 then redis.call('SADD', KEYS[3], redis.call('HGET', key, 'id')) end
return 1
`;

/** Cancels a queued or running job. KEYS: job, webhooks set. ARGV: now, ttl ms. */
export const CANCEL = `
local s = redis.call('HGET', KEYS[1], 'status')
if s ~= 'in_queue' and s ~= 'in_progress' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'owner', '', 'finished_at', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('HEXISTS', KEYS[1], 'webhook_url') == 1 then redis.call('SADD', KEYS[2], redis.call('HGET', KEYS[1], 'id')) end
return 1
`;

/**
 * An entry reclaimed from a dead runner. KEYS: stream, job, webhooks set.
 * ARGV: group, entry, max attempts, now, ttl ms. Returns 1 when moved.
 */
export const REAP = `
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local key = KEYS[2]
local s = redis.call('HGET', key, 'status')
if s == 'in_progress' and tonumber(redis.call('HGET', key, 'attempts')) >= tonumber(ARGV[3]) then
  redis.call('HSET', key, 'status', 'failed', 'owner', '', 'finished_at', ARGV[4],
    'error', 'the server running it stopped ' .. redis.call('HGET', key, 'attempts') .. ' times (see --job-attempts)')
  redis.call('PEXPIRE', key, ARGV[5])
  if redis.call('HEXISTS', key, 'webhook_url') == 1 then redis.call('SADD', KEYS[3], redis.call('HGET', key, 'id')) end
  return 1
end
if s == 'in_progress' or s == 'in_queue' then
  redis.call('HSET', key, 'status', 'in_queue', 'owner', '', 'error', 'the server running it stopped')
  redis.call('XADD', KEYS[1], '*', 'id', redis.call('HGET', key, 'id'))
  return 1
end
return 0
`;
