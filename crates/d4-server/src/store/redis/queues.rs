//! Analyzer queues in Redis, in the reference (d4-core) key schema, so that
//! the D4 ecosystem's analyzers keep reading them with `RPOP` (issue 4,
//! first part: the backend itself; the server does not use it yet).
//!
//! Keys (metadata instance / queue instance, DB 2 of the same server by
//! default, as the reference):
//!
//! | key | instance | what |
//! |-----|----------|------|
//! | `analyzer:<type-or-name>:<queue>` | queues | the list: producers `LPUSH` + `LTRIM`, consumers `RPOP` (FIFO) |
//! | `analyzer:<queue>` | metadata | hash `type` (254 for extended types), `metatype`, `description`, `max_size`, `last_updated`; ours add `created`, `d4_pushed`, `d4_dropped`, `d4_last_popped` |
//! | `analyzer:<type>`, `analyzer:254:<name>` | metadata | set of the queues of a type (all sensors) |
//! | `analyzer_uuid_group:<type>`, `analyzer_uuid_group:254:<name>` | metadata | set of the group queues of a type |
//! | `analyzer_sensor_group:<queue>` | metadata | set of the sensors (32 hex) of a group queue |
//! | `sensor:queues:<type-or-name>:<sensor>` | metadata | set of the group queues a sensor feeds |
//! | `all_analyzer_queues` | metadata | set of every queue |
//! | `d4:processing:<queue>` | queues | ours: the batch a reliable consumer holds until it acknowledges |
//!
//! Queues are routed from these sets on every push, so a queue created or
//! deleted by a reference tool takes effect at once. Unlike the reference,
//! group queues of extended types receive data (the reference registers them
//! under `254` and looks them up under the name).

use anyhow::{bail, Context, Result};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use uuid::Uuid;

use crate::config::RedisTarget;
use crate::store::queues::{QueueDef, QueueType};

/// Queues in Redis.
#[derive(Clone)]
pub struct RedisQueues {
    meta: ConnectionManager,
    lists: ConnectionManager,
    default_max: u64,
    /// Queues whose definition or list cannot be used, already reported once.
    unusable: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<Uuid>>>,
    /// This node's sequence numbers (a random node until [`Self::set_node`]).
    seq: std::sync::Arc<NodeSeq>,
}

/// A queue hash that names no usable type (written by another tool): the
/// queue is left out of listings and routing, never a failure of the rest.
#[derive(Debug)]
struct UnusableQueue(String);

impl std::fmt::Display for UnusableQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnusableQueue {}

/// The largest max size honoured (`LTRIM` takes a signed end).
const MAX_SIZE_CAP: u64 = i64::MAX as u64;

/// One queue's part of a push.
pub struct PushGroup<'a> {
    /// The queue.
    pub queue: Uuid,
    /// Its type (names its list).
    pub ty: &'a QueueType,
    /// Its max size: the list keeps its newest `max` items.
    pub max: u64,
    /// The node's sequence number of the first item; the others follow
    /// without gaps. Numbers grow in push order (spooled items keep theirs),
    /// and Redis keeps the last one applied (`d4:pushed_upto:<node>`).
    pub first_seq: u64,
    /// The items, oldest first.
    pub items: &'a [&'a [u8]],
}

/// A node's sequence numbers for pushed items.
struct NodeSeq {
    /// `d4:pushed_upto:<node>`: the last number Redis applied.
    key: String,
    next: std::sync::atomic::AtomicU64,
}

/// KEYS[1]: the node's last applied sequence number; KEYS[2..]: one list per
/// group. ARGV per group: first sequence number, max size - 1, item count,
/// the items. Returns per group two numbers: the list length before the
/// trim (-2 if every item was applied before, -1 if the key holds no list),
/// and how many items this call applied (or dropped, for -1). The mark
/// moves after each group, so a script stopped midway is resumed, not
/// repeated.
static PUSH_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local applied = tonumber(redis.call('GET', KEYS[1]) or '-1')
local out = {}
local a = 1
for g = 2, #KEYS do
  local first = tonumber(ARGV[a])
  local trim = ARGV[a + 1]
  local n = tonumber(ARGV[a + 2])
  local from = a + 3
  a = from + n
  local skip = 0
  if applied >= first then skip = math.min(n, applied - first + 1) end
  if skip == n then
    out[#out + 1] = -2
    out[#out + 1] = 0
  else
    local t = redis.call('TYPE', KEYS[g])['ok']
    if t ~= 'list' and t ~= 'none' then
      out[#out + 1] = -1
    else
      local len = 0
      local i = from + skip
      while i < a do
        local j = math.min(i + 999, a - 1)
        len = redis.call('LPUSH', KEYS[g], unpack(ARGV, i, j))
        i = j + 1
      end
      redis.call('LTRIM', KEYS[g], 0, trim)
      out[#out + 1] = len
    end
    out[#out + 1] = n - skip
    applied = first + n - 1
    redis.call('SET', KEYS[1], string.format('%d', applied))
  end
end
return out
",
    )
});

/// The list key of a queue.
pub(crate) fn list_key(ty: &QueueType, id: Uuid) -> String {
    format!("analyzer:{ty}:{id}")
}

fn meta_key(id: Uuid) -> String {
    format!("analyzer:{id}")
}

fn processing_key(id: Uuid) -> String {
    format!("d4:processing:{id}")
}

/// The set of the queues of a type (all sensors, or groups).
fn type_set(ty: &QueueType, group: bool) -> String {
    let prefix = if group {
        "analyzer_uuid_group"
    } else {
        "analyzer"
    };
    match ty {
        QueueType::Type(n) => format!("{prefix}:{n}"),
        QueueType::Extended(s) => format!("{prefix}:254:{s}"),
    }
}

fn sensor_set(ty: &QueueType, sensor: Uuid) -> String {
    format!("sensor:queues:{ty}:{}", sensor.simple())
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Moves up to ARGV[1] items from the tail of KEYS[1] to KEYS[2] (unless
/// KEYS[2] already holds a batch) and returns KEYS[2], newest first: the
/// read half of a reliable consumer (also `d4 client`'s `d4server` source).
pub const READ_SCRIPT: &str = r"
if redis.call('LLEN', KEYS[2]) == 0 then
  for i = 1, tonumber(ARGV[1]) do
    if not redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') then break end
  end
end
return redis.call('LRANGE', KEYS[2], 0, -1)
";

/// Drops the oldest ARGV[1] items of the batch KEYS[1] held by
/// [`READ_SCRIPT`]; returns how many: the acknowledging half.
pub const ACK_SCRIPT: &str = r"
local n = redis.call('LLEN', KEYS[1])
local k = tonumber(ARGV[1])
if k >= n then redis.call('DEL', KEYS[1]) return n end
if k > 0 then redis.call('LTRIM', KEYS[1], 0, -1 - k) end
return k
";

impl RedisQueues {
    /// Connects to the metadata and queue instances. The connections
    /// reconnect by themselves.
    ///
    /// With `start_unreachable`, a Redis that refuses connections or does
    /// not answer is no error: the connections are made once it answers
    /// (a node restarted during an outage). Any other failure (TLS, a
    /// password, a bad URL) is.
    pub async fn connect(
        meta_url: &RedisTarget,
        lists_url: &RedisTarget,
        default_max: u64,
        start_unreachable: bool,
    ) -> Result<RedisQueues> {
        // Short timeouts: while Redis is away, sessions and the spools must
        // learn it in about a second, not wait on reconnection attempts.
        let config = || {
            redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
                .set_response_timeout(Some(std::time::Duration::from_secs(3)))
                .set_number_of_retries(1)
                .set_max_delay(std::time::Duration::from_millis(500))
        };
        let manager = async |t: &RedisTarget| -> Result<ConnectionManager> {
            let client = t.client()?;
            match ConnectionManager::new_with_config(client.clone(), config()).await {
                Ok(m) => Ok(m),
                Err(e) if start_unreachable && (e.is_connection_refusal() || e.is_timeout()) => {
                    tracing::warn!(
                        "Redis at {t} unreachable at start ({e}): connecting once it answers"
                    );
                    ConnectionManager::new_lazy_with_config(client, config())
                        .with_context(|| format!("Redis at {t}"))
                }
                Err(e) => Err(anyhow::Error::new(e).context(format!("cannot reach Redis at {t}"))),
            }
        };
        let meta = manager(meta_url).await?;
        let lists = manager(lists_url).await?;
        Ok(RedisQueues {
            meta,
            lists,
            default_max: default_max.max(1),
            unusable: Default::default(),
            seq: std::sync::Arc::new(NodeSeq {
                key: format!("d4:pushed_upto:{}", Uuid::new_v4().simple()),
                next: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// A connection to the metadata instance (for the other shared state).
    pub(crate) fn meta_connection(&self) -> ConnectionManager {
        self.meta.clone()
    }

    /// Creates a queue (for a group of sensors when `sensors` is not empty;
    /// `max_size` at least 1, as the server's `Queues` checks).
    pub async fn create(
        &self,
        ty: QueueType,
        description: String,
        max_size: u64,
        sensors: Vec<Uuid>,
    ) -> Result<QueueDef> {
        let id = Uuid::new_v4();
        let t = now();
        let (type_field, metatype) = match &ty {
            QueueType::Type(n) => (n.to_string(), None),
            QueueType::Extended(s) => ("254".to_string(), Some(s.clone())),
        };
        let mut p = redis::pipe();
        p.atomic();
        let mk = meta_key(id);
        p.hset(&mk, "type", &type_field)
            .hset(&mk, "description", &description)
            .hset(&mk, "max_size", max_size)
            .hset(&mk, "last_updated", t)
            .hset(&mk, "created", t as i64)
            .hset(&mk, "d4_pushed", 0)
            .hset(&mk, "d4_dropped", 0);
        if let Some(m) = &metatype {
            p.hset(&mk, "metatype", m);
        }
        p.sadd(type_set(&ty, !sensors.is_empty()), id.to_string());
        for s in &sensors {
            p.sadd(
                format!("analyzer_sensor_group:{id}"),
                s.simple().to_string(),
            );
            p.sadd(sensor_set(&ty, *s), id.to_string());
        }
        p.sadd("all_analyzer_queues", id.to_string());
        let mut c = self.meta.clone();
        let _: () = p.query_async(&mut c).await?;
        self.get(id)
            .await?
            .context("the queue vanished right after its creation")
    }

    /// A queue, or None.
    pub async fn get(&self, id: Uuid) -> Result<Option<QueueDef>> {
        let mut c = self.meta.clone();
        let h: std::collections::HashMap<String, String> = c.hgetall(meta_key(id)).await?;
        let Some(type_field) = h.get("type") else {
            return Ok(None);
        };
        let ty = match (type_field.as_str(), h.get("metatype")) {
            ("254" | "2", Some(m)) => QueueType::parse(m),
            (t, _) => QueueType::parse(t),
        }
        .map_err(|e| {
            UnusableQueue(format!(
                "queue {id}: its hash analyzer:{id} has type {type_field:?} and metatype {:?}, \
                 not a D4 type ({e:#})",
                h.get("metatype")
            ))
        })?;
        let num = |k: &str| -> f64 { h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
        let sensors: Vec<String> = c.smembers(format!("analyzer_sensor_group:{id}")).await?;
        let mut sensors: Vec<Uuid> = sensors
            .iter()
            .filter_map(|s| Uuid::parse_str(s).ok())
            .collect();
        sensors.sort();
        let mut l = self.lists.clone();
        // A key that another tool made something else than a list holds no
        // items of this queue (and is reported when pushed to).
        let mut llen = async |k: String| match l.llen::<_, u64>(k).await {
            Err(e) if e.code() == Some("WRONGTYPE") => Ok(0),
            r => r,
        };
        let len = llen(list_key(&ty, id)).await?;
        let held = llen(processing_key(id)).await?;
        let max_size = h
            .get("max_size")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(self.default_max)
            .clamp(1, MAX_SIZE_CAP);
        Ok(Some(QueueDef {
            uuid: id,
            ty,
            description: h.get("description").cloned().unwrap_or_default(),
            max_size,
            sensors,
            created: num("created") as i64,
            last_updated: num("last_updated") as i64,
            last_popped: num("d4_last_popped") as i64,
            head: 0,
            tail: len + held,
            dropped: num("d4_dropped") as u64,
            pushed: num("d4_pushed") as u64,
        }))
    }

    /// Every queue (also those a reference tool created).
    pub async fn list(&self) -> Result<Vec<QueueDef>> {
        let mut c = self.meta.clone();
        let ids: Vec<String> = c.smembers("all_analyzer_queues").await?;
        let mut out = Vec::new();
        for id in ids.iter().filter_map(|s| Uuid::parse_str(s).ok()) {
            match self.get(id).await {
                Ok(Some(d)) => out.push(d),
                Ok(None) => {}
                Err(e) => match e.downcast_ref::<UnusableQueue>() {
                    Some(u) => {
                        let mut seen = self.unusable.lock().unwrap_or_else(|p| p.into_inner());
                        if seen.insert(id) {
                            tracing::warn!("{u}: left out, nothing is routed to it");
                        }
                    }
                    None => return Err(e),
                },
            }
        }
        out.sort_by_key(|d| (d.created, d.uuid));
        Ok(out)
    }

    /// The queues a sensor's data of type `ty` goes to.
    pub(crate) async fn route(&self, ty: &QueueType, sensor: Uuid) -> Result<Vec<Uuid>> {
        let mut c = self.meta.clone();
        let mut ids: Vec<String> = c.smembers(type_set(ty, false)).await?;
        let group: Vec<String> = c.smembers(sensor_set(ty, sensor)).await?;
        ids.extend(group);
        let mut ids: Vec<Uuid> = ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Pushes items from a sensor to every queue of their type it feeds.
    pub async fn push(
        &self,
        ty: &QueueType,
        sensor: Uuid,
        items: &[impl AsRef<[u8]>],
    ) -> Result<()> {
        for q in self.route(ty, sensor).await? {
            self.push_to(ty, q, items).await?;
        }
        Ok(())
    }

    /// Pushes items to one queue (`LPUSH` + `LTRIM`): it keeps its newest
    /// `max_size` items; the others are counted in `d4_dropped`.
    pub(crate) async fn push_to(
        &self,
        ty: &QueueType,
        q: Uuid,
        items: &[impl AsRef<[u8]>],
    ) -> Result<()> {
        let mut m = self.meta.clone();
        let max: Option<u64> = m.hget(meta_key(q), "max_size").await?;
        self.push_with_max(ty, q, max.unwrap_or(self.default_max), items)
            .await
    }

    /// The same with the queue's max size known (the server's cache).
    pub(crate) async fn push_with_max(
        &self,
        ty: &QueueType,
        q: Uuid,
        max: u64,
        items: &[impl AsRef<[u8]>],
    ) -> Result<()> {
        let items: Vec<&[u8]> = items.iter().map(|i| i.as_ref()).collect();
        let first_seq = self.reserve(items.len() as u64);
        self.push_many(&[PushGroup {
            queue: q,
            ty,
            max,
            first_seq,
            items: &items,
        }])
        .await
    }

    /// Takes this node's sequence numbers for `n` items (see
    /// [`PushGroup::first_seq`]); returns the first.
    pub fn reserve(&self, n: u64) -> u64 {
        self.seq
            .next
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed)
    }

    /// The last sequence number Redis applied for `node`.
    pub async fn applied_upto(&self, node: &str) -> Result<Option<u64>> {
        let mut l = self.lists.clone();
        Ok(l.get(format!("d4:pushed_upto:{node}")).await?)
    }

    /// Names this node (see [`Self::applied_upto`]) and continues its
    /// sequence numbers from `next`.
    pub fn set_node(&mut self, node: &str, next: u64) {
        self.seq = std::sync::Arc::new(NodeSeq {
            key: format!("d4:pushed_upto:{node}"),
            next: std::sync::atomic::AtomicU64::new(next),
        });
    }

    /// The next sequence number [`Self::reserve`] gives.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.next.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Pushes groups of items, in order, in one script on the lists instance
    /// (a variadic `LPUSH` + `LTRIM` each); then the counters on the
    /// metadata instance. Idempotent: the script skips the items whose
    /// sequence numbers Redis has applied already, so a retry after a lost
    /// reply, a timeout or a crash never delivers an item twice. A list key
    /// holding another type is skipped, its items dropped, counted and
    /// reported, never a failure of the others. On an error nothing more was
    /// applied than a retry completes.
    pub async fn push_many(&self, work: &[PushGroup<'_>]) -> Result<()> {
        let work: Vec<&PushGroup> = work.iter().filter(|w| !w.items.is_empty()).collect();
        if work.is_empty() {
            return Ok(());
        }
        let mut inv = PUSH_SCRIPT.prepare_invoke();
        inv.key(&self.seq.key);
        for w in &work {
            inv.key(list_key(w.ty, w.queue))
                .arg(w.first_seq)
                .arg(w.max.clamp(1, MAX_SIZE_CAP) - 1)
                .arg(w.items.len())
                .arg(w.items);
        }
        let mut l = self.lists.clone();
        let out: Vec<i64> = inv.invoke_async(&mut l).await?;
        // Counters, per queue: best effort (the items are in Redis already).
        let mut counts: std::collections::BTreeMap<Uuid, (u64, u64)> = Default::default();
        for (w, r) in work.iter().zip(out.chunks_exact(2)) {
            let (len, n) = (r[0], r[1].max(0) as u64);
            match len {
                -2 => {} // applied before (a retry)
                -1 => {
                    counts.entry(w.queue).or_default().1 += n;
                    let mut seen = self.unusable.lock().unwrap_or_else(|p| p.into_inner());
                    if seen.insert(w.queue) {
                        tracing::error!(
                            "queue {}: the key {} holds no list: its items are dropped (counted in d4_dropped)",
                            w.queue,
                            list_key(w.ty, w.queue)
                        );
                    }
                }
                len => {
                    let c = counts.entry(w.queue).or_default();
                    c.0 += n;
                    c.1 += (len.max(0) as u64).saturating_sub(w.max.max(1));
                }
            }
        }
        if counts.is_empty() {
            return Ok(());
        }
        let mut mp = redis::pipe();
        let t = now();
        for (q, (pushed, dropped)) in &counts {
            let mk = meta_key(*q);
            if *pushed > 0 {
                mp.hset(&mk, "last_updated", t)
                    .ignore()
                    .hincr(&mk, "d4_pushed", *pushed)
                    .ignore();
            }
            if *dropped > 0 {
                mp.hincr(&mk, "d4_dropped", *dropped).ignore();
            }
        }
        let mut m = self.meta.clone();
        if let Err(e) = mp.query_async::<()>(&mut m).await {
            tracing::warn!("queue counters not updated in Redis: {e}");
        }
        Ok(())
    }

    /// The first `n` items, oldest first, left in place.
    pub(crate) async fn peek(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>> {
        let d = self.def(id).await?;
        let mut l = self.lists.clone();
        let n = n.clamp(1, 10_000) as isize;
        let mut v: Vec<Vec<u8>> = l.lrange(list_key(&d.ty, id), -n, -1).await?;
        v.reverse();
        Ok(v)
    }

    /// Removes every item; returns how many.
    pub(crate) async fn empty(&self, id: Uuid) -> Result<u64> {
        let d = self.def(id).await?;
        let mut l = self.lists.clone();
        let key = list_key(&d.ty, id);
        let n: u64 = l.llen(&key).await?;
        let _: () = l.del(&key).await?;
        self.popped(id).await?;
        Ok(n)
    }

    async fn def(&self, id: Uuid) -> Result<QueueDef> {
        match self.get(id).await? {
            Some(d) => Ok(d),
            None => bail!("no queue {id}"),
        }
    }

    /// Removes and returns up to `n` items, oldest first (`RPOP key n`).
    pub async fn pop(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>> {
        let d = self.def(id).await?;
        let mut l = self.lists.clone();
        let Some(count) = std::num::NonZeroUsize::new(n) else {
            return Ok(Vec::new());
        };
        let v: Option<Vec<Vec<u8>>> = l.rpop(list_key(&d.ty, id), Some(count)).await?;
        self.popped(id).await?;
        Ok(v.unwrap_or_default())
    }

    /// Remembers that a consumer came (queue monitoring: "not consumed").
    async fn popped(&self, id: Uuid) -> Result<()> {
        let mut m = self.meta.clone();
        let _: () = m.hset(meta_key(id), "d4_last_popped", now() as i64).await?;
        Ok(())
    }

    /// Up to `n` items, oldest first, held for this consumer until
    /// [`RedisQueues::ack`]; a consumer that died before acknowledging gets
    /// the same batch again.
    pub async fn read(&self, id: Uuid, n: usize) -> Result<Vec<Vec<u8>>> {
        let d = self.def(id).await?;
        let mut l = self.lists.clone();
        let mut v: Vec<Vec<u8>> = redis::Script::new(READ_SCRIPT)
            .key(list_key(&d.ty, id))
            .key(processing_key(id))
            .arg(n.max(1))
            .invoke_async(&mut l)
            .await?;
        self.popped(id).await?;
        v.reverse();
        Ok(v)
    }

    /// Drops the first `upto` items (oldest first) of the batch held by
    /// [`RedisQueues::read`]; the rest stay held and are read again.
    /// Returns how many were dropped.
    pub async fn ack(&self, id: Uuid, upto: u64) -> Result<usize> {
        let mut l = self.lists.clone();
        let removed: usize = redis::Script::new(ACK_SCRIPT)
            .key(processing_key(id))
            .arg(upto.min(1 << 53))
            .invoke_async(&mut l)
            .await?;
        Ok(removed)
    }

    /// Changes the max size (trimming the oldest items at once; at least 1,
    /// as the server's `Queues` checks).
    pub async fn resize(&self, id: Uuid, max_size: u64) -> Result<QueueDef> {
        let d = self.def(id).await?;
        let mut m = self.meta.clone();
        let _: () = m.hset(meta_key(id), "max_size", max_size).await?;
        let mut l = self.lists.clone();
        let key = list_key(&d.ty, id);
        let len: u64 = l.llen(&key).await?;
        let _: () = l
            .ltrim(&key, 0, (max_size.min(MAX_SIZE_CAP) - 1) as isize)
            .await?;
        let dropped = len.saturating_sub(max_size);
        if dropped > 0 {
            let _: () = m.hincr(meta_key(id), "d4_dropped", dropped).await?;
        }
        self.def(id).await
    }

    /// Deletes a queue and its items (as the reference's `remove_queues`).
    pub async fn delete(&self, id: Uuid) -> Result<QueueDef> {
        let d = self.def(id).await?;
        let mut p = redis::pipe();
        p.atomic();
        p.del(meta_key(id)).ignore();
        p.del(format!("analyzer_sensor_group:{id}")).ignore();
        for s in &d.sensors {
            p.srem(sensor_set(&d.ty, *s), id.to_string()).ignore();
        }
        p.srem(type_set(&d.ty, !d.sensors.is_empty()), id.to_string())
            .ignore();
        p.srem("all_analyzer_queues", id.to_string()).ignore();
        let mut m = self.meta.clone();
        let _: () = p.query_async(&mut m).await?;
        let mut l = self.lists.clone();
        let _: () = l.del(&[list_key(&d.ty, id), processing_key(id)]).await?;
        Ok(d)
    }
}
