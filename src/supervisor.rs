//! Supervised background loops: a loop that panics is logged at error level, recorded in the
//! [`HealthBoard`] and restarted after a short back-off, until the runtime stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::{HealthBoard, LoopState};
use crate::signals::panic_message;

/// Runs the loop that `make` builds under supervision, as `name`: when it returns, it is
/// done; when it panics, it is restarted (first after 100 ms, doubling up to 5 s) unless
/// `stop` was cancelled.
pub(crate) fn supervise<F, Fut>(name: &'static str, board: Arc<HealthBoard>, stop: CancellationToken, make: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    board.set_state(name, LoopState::Running);
    tokio::spawn(async move {
        let mut restarts: u32 = 0;
        loop {
            match tokio::spawn(make()).await {
                Ok(()) => break,
                Err(e) if e.is_panic() => {
                    let message = panic_message(e.into_panic().as_ref());
                    tracing::error!(background.loop = name, panic = %message, "a background loop panicked; restarting it");
                    board.panicked(name, message);
                    restarts = restarts.saturating_add(1);
                }
                Err(_) => break,
            }
            let pause = Duration::from_millis(100).saturating_mul(1 << restarts.min(6).saturating_sub(1)).min(Duration::from_secs(5));
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
            board.set_state(name, LoopState::Running);
        }
        board.set_state(name, LoopState::Stopped);
    })
}
