//! `d4-server`: the D4 server — TLS ingest of sensor streams, admission
//! policy, per-type workers writing rotated files, analyzer queues (in an
//! embedded store or in Redis), and the web UI and management API that
//! the `d4` CLI talks to.
//!
//! # Layout
//!
//! - `config`: the TOML configuration and its defaults.
//! - `tls`: the CA and server certificate created on first start.
//! - `server`: [`start`] and [`run`]: brings every room up, writes
//!   `server.json`, and stops them in order.
//! - `admission/`: connection slots of both listeners: budgets per
//!   address, per prefix and in all for connections that have not
//!   authenticated (the heaviest address's oldest evicted first), a
//!   separate one for those that have; the open-files limit raised at start and the budgets sized from it.
//! - `ingest/`: sensors in: the listener (connection limits), one session
//!   per connection (decode, check, verify, hand over), the admission
//!   policy, why a session is refused and whose fault that is (`reject`:
//!   the sensor's, the policy's, the server's, the store's), and the sensor
//!   registry.
//! - `workers/`: per-type reconstruction, rotated files, gzip, announcements.
//! - `store/`: what is kept, one trait per concern with an embedded and a
//!   Redis implementation: the local redb database, the analyzer queues
//!   (`QueueBackend`), cross-node admission (`SessionGate`: kicks, keys,
//!   leases) and the sensor metadata mirror (`MetaMirror`); in Redis mode
//!   also the policy shared with other nodes.
//! - `http/`: the HTTPS port: accept loop and authentication, the REST API
//!   (`api/`), the server-rendered admin UI (`web/`), `/metrics`, and the
//!   operations both the API and the UI call.
//! - `accounts`: users, roles, API keys, browser sessions, login throttling.
//! - `monitor`: alerts (silent sensors, full or unconsumed queues), webhook.
//!
//! Only what the `d4` binary and the integration tests need is public: the
//! list below.

mod accounts;
mod admission;
mod config;
mod http;
mod ingest;
mod monitor;
mod series;
mod server;
mod store;
mod tls;
mod workers;

pub use config::{Mode, RedisTarget, ServerConfig, TimeZone};
pub use server::{run, start, ControlFile, RunningServer, CONTROL_FILE};
pub use store::queues::{QueueDef, QueueType};
pub use store::redis::queues::{PushGroup, RedisQueues, ACK_SCRIPT, READ_SCRIPT};
pub use tls::ensure_material as ensure_tls_material;
