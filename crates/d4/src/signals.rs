//! Ctrl-C / SIGTERM handling for the long-running commands that must not
//! lose what they hold when interrupted. The binary owns the signals: the
//! libraries it runs are told to stop (a flag they check, or
//! `d4_pdns::cli::Shutdown`), never install handlers of their own.
//!
//! Signals are only received here, never sent: no command signals its
//! process group or any process but its own children.

use std::sync::atomic::{AtomicU32, Ordering};

/// How many interrupts (Ctrl-C and SIGTERM) arrived.
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);
/// How many of them were SIGTERM.
static TERMS: AtomicU32 = AtomicU32::new(0);

/// Which signal arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// SIGINT (Ctrl-C): reaches a whole shell pipeline.
    Interrupt,
    /// SIGTERM: `kill`, `timeout`, `systemctl stop`; meant for this process.
    Terminate,
}

/// Counts Ctrl-C and SIGTERM instead of dying; `on_signal(n)` runs for the
/// n-th one (on a background thread).
pub(crate) fn catch(on_signal: impl Fn(u32) + Send + 'static) {
    catch_kind(move |_, n| on_signal(n));
}

/// [`catch`], telling which signal it was: `on_signal(kind, n)` for the
/// n-th interrupt of either kind. Signals that arrive together may be seen
/// once (`timeout` sends SIGTERM to the command and to its group).
pub(crate) fn catch_kind(on_signal: impl Fn(Kind, u32) + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                #[cfg(unix)]
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                loop {
                    #[cfg(unix)]
                    let kind = match term.as_mut() {
                        Some(t) => {
                            tokio::select! {
                                r = tokio::signal::ctrl_c() => if r.is_err() { return } else { Kind::Interrupt },
                                _ = t.recv() => Kind::Terminate,
                            }
                        }
                        None => {
                            if tokio::signal::ctrl_c().await.is_err() {
                                return;
                            }
                            Kind::Interrupt
                        }
                    };
                    #[cfg(not(unix))]
                    let kind = {
                        if tokio::signal::ctrl_c().await.is_err() {
                            return;
                        }
                        Kind::Interrupt
                    };
                    if kind == Kind::Terminate {
                        TERMS.fetch_add(1, Ordering::SeqCst);
                    }
                    let n = INTERRUPTS.fetch_add(1, Ordering::SeqCst) + 1;
                    on_signal(kind, n);
                }
            });
        });
}

/// Whether an interrupt (Ctrl-C or SIGTERM) arrived.
pub(crate) fn interrupted() -> bool {
    INTERRUPTS.load(Ordering::SeqCst) > 0
}

/// Whether a SIGTERM arrived.
pub(crate) fn terminated() -> bool {
    TERMS.load(Ordering::SeqCst) > 0
}
