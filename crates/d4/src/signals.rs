//! Ctrl-C / SIGTERM handling for the long-running commands that must not
//! lose what they hold when interrupted. The binary owns the signals: the
//! libraries it runs are told to stop (a flag they check, or
//! `d4_api::shutdown::Shutdown`), never install handlers of their own.
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

/// How long a sending command may take to stop after SIGTERM (a write to a
/// stalled server, a slow confirmation) before it quits anyway; systemd
/// waits 90 s before SIGKILL.
pub(crate) const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// What a sending command says when it is interrupted or told to stop.
pub(crate) struct Stop {
    /// The command's name, first on each line.
    pub(crate) command: &'static str,
    /// Said on the first Ctrl-C.
    pub(crate) on_interrupt: &'static str,
    /// Said on SIGTERM.
    pub(crate) on_terminate: &'static str,
    /// What is not delivered when [`STOP_GRACE`] runs out.
    pub(crate) after_grace: &'static str,
}

/// The sending commands' signals (`d4 client`, `d4 forward`): the first
/// Ctrl-C lets the command finish what it has in hand ([`interrupted`]), a
/// second quits now (130); SIGTERM stops it ([`terminated`]: no more input,
/// no new connection, no backoff wait), and quits with status 1 if it is not
/// done within [`STOP_GRACE`].
pub(crate) fn finish_or_stop(s: Stop) {
    let interrupts = AtomicU32::new(0);
    let watchdog = std::sync::Once::new();
    catch_kind(move |kind, _| match kind {
        Kind::Interrupt => {
            if interrupts.fetch_add(1, Ordering::SeqCst) == 0 {
                eprintln!("{}: {}", s.command, s.on_interrupt);
            } else {
                std::process::exit(130);
            }
        }
        Kind::Terminate => watchdog.call_once(|| {
            eprintln!("{}: {}", s.command, s.on_terminate);
            let after = s.after_grace;
            let _ = std::thread::Builder::new()
                .name("stop-grace".into())
                .spawn(move || {
                    std::thread::sleep(STOP_GRACE);
                    eprintln!(
                        "d4: error: still not done {} s after SIGTERM: quitting; {after}",
                        STOP_GRACE.as_secs()
                    );
                    std::process::exit(1);
                });
        }),
    });
}
