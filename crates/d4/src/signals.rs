//! Ctrl-C / SIGTERM handling for the long-running commands that must not
//! lose what they hold when interrupted. The binary owns the signals: the
//! libraries it runs are told to stop (a flag they check, or
//! `d4_pdns::cli::Shutdown`), never install handlers of their own.

use std::sync::atomic::{AtomicU32, Ordering};

/// How many interrupts arrived.
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

/// Counts Ctrl-C and SIGTERM instead of dying; `on_signal(n)` runs for the
/// n-th one (on a background thread).
pub(crate) fn catch(on_signal: impl Fn(u32) + Send + 'static) {
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
                    {
                        match term.as_mut() {
                            Some(t) => {
                                tokio::select! {
                                    r = tokio::signal::ctrl_c() => if r.is_err() { return },
                                    _ = t.recv() => {}
                                }
                            }
                            None => {
                                if tokio::signal::ctrl_c().await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    #[cfg(not(unix))]
                    if tokio::signal::ctrl_c().await.is_err() {
                        return;
                    }
                    let n = INTERRUPTS.fetch_add(1, Ordering::SeqCst) + 1;
                    on_signal(n);
                }
            });
        });
}

/// Whether an interrupt arrived.
pub(crate) fn interrupted() -> bool {
    INTERRUPTS.load(Ordering::SeqCst) > 0
}
