//! Supervised background loops: a loop that panics is logged at error level, recorded in the
//! [`HealthBoard`] and restarted after a short back-off, until the runtime stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::{HealthBoard, LoopState};
use crate::signals::panic_message;

/// Runs the loop that `make` builds under supervision, as `name`: when it returns after `stop`
/// was cancelled, it is done (one that returns before is logged at error level and shown
/// stopped, with the reason as its last error); when it panics, it is restarted (first after
/// 100 ms, doubling up to 5 s) unless `stop` was cancelled.
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
                Ok(()) if stop.is_cancelled() => break,
                // A loop ends when told to stop; one that returns otherwise would leave its
                // work undone with nothing said: logged, and shown stopped with the reason.
                Ok(()) => {
                    tracing::error!(background.loop = name, "a background loop ended while the runtime runs; its work is no longer done in this process");
                    board.pass(name, Err("ended while the runtime runs (not asked to stop)"));
                    break;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The health of loop `name` on `board`.
    fn health_of(board: &HealthBoard, name: &str) -> crate::health::LoopHealth {
        board.snapshot().get(name).cloned().expect("the loop is on the board")
    }

    #[tokio::test]
    async fn a_loop_that_ends_unasked_is_shown_stopped_with_the_reason() {
        let board = Arc::new(HealthBoard::default());
        supervise("early", Arc::clone(&board), CancellationToken::new(), || async {}).await.unwrap();
        let health = health_of(&board, "early");
        assert_eq!(health.state, LoopState::Stopped);
        assert_eq!(health.last_error.as_deref(), Some("ended while the runtime runs (not asked to stop)"));
    }

    #[tokio::test]
    async fn a_loop_that_ends_when_asked_is_stopped_without_error() {
        let board = Arc::new(HealthBoard::default());
        let stop = CancellationToken::new();
        let asked = stop.clone();
        let handle = supervise("asked", Arc::clone(&board), stop.clone(), move || {
            let asked = asked.clone();
            async move { asked.cancelled().await }
        });
        stop.cancel();
        handle.await.unwrap();
        let health = health_of(&board, "asked");
        assert_eq!(health.state, LoopState::Stopped);
        assert_eq!(health.last_error, None);
    }
}
