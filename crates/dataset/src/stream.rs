//! Photos prepared by a bounded pool of threads while the caller runs the previous batch.
//!
//! [`for_each_batch`] hands the caller batches in list order. Worker threads prepare
//! (decode, resize) the photos ahead of it, but never more than `window` photos past the
//! last batch the caller has finished: whatever the list's length, at most `window` prepared
//! photos exist at once, so memory is bounded by the batch size, not by the number of photos.
//! With `window` at twice the batch, one batch is prepared while the caller runs the other.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, PoisonError};

/// How many threads prepare photos and how far ahead of the caller they may run.
#[derive(Clone, Copy, Debug)]
pub struct Pipeline {
    pub workers: usize,
    pub batch: usize,
    /// Photos prepared or being prepared, beyond those the caller has finished, at most.
    pub window: usize,
}

impl Pipeline {
    /// `workers` threads (at least one), batches of `batch`, two batches in flight.
    pub fn new(workers: usize, batch: usize) -> Pipeline {
        let batch = batch.max(1);
        Pipeline {
            workers: workers.max(1),
            batch,
            window: 2 * batch,
        }
    }

    /// One worker per core the process may use (at most 8).
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    }
}

/// Where the workers are: the next item to take, the items the caller has finished, and
/// whether to stop (the caller is done, failed or panicked, or a worker panicked).
struct Progress {
    next: usize,
    finished: usize,
    stop: bool,
    /// A worker's panic, re-raised on the caller's thread once everything has stopped.
    panic: Option<Box<dyn std::any::Any + Send>>,
}

/// Tells the workers to stop when dropped: on the caller's return, error or panic alike, so
/// that no worker is left waiting for a window that will never move.
struct StopOnDrop<'a> {
    state: &'a Mutex<Progress>,
    wake: &'a Condvar,
}

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop = true;
        self.wake.notify_all();
    }
}

/// Calls `prepare` on every item (on the pipeline's threads, ahead of the caller) and
/// `consume` on each batch of prepared items in order, as `(position, prepared)` pairs.
/// Stops at `consume`'s first error and returns it; items not yet prepared then never are.
/// A panic in `prepare` or `consume` stops every thread and is re-raised here, never a hang.
pub fn for_each_batch<I, T, E>(
    items: &[I],
    pipeline: Pipeline,
    prepare: impl Fn(&I) -> T + Sync,
    mut consume: impl FnMut(Vec<(usize, T)>) -> Result<(), E>,
) -> Result<(), E>
where
    I: Sync,
    T: Send,
{
    let state = Mutex::new(Progress {
        next: 0,
        finished: 0,
        stop: false,
        panic: None,
    });
    let wake = Condvar::new();
    let (sender, receiver) = mpsc::channel::<(usize, T)>();
    let result = std::thread::scope(|scope| {
        for _ in 0..pipeline.workers.min(items.len()) {
            let sender = sender.clone();
            let (state, wake, prepare) = (&state, &wake, &prepare);
            scope.spawn(move || work(items, pipeline.window, state, wake, prepare, sender));
        }
        drop(sender);
        let _stop = StopOnDrop {
            state: &state,
            wake: &wake,
        };
        deliver(items.len(), pipeline.batch, &receiver, &mut consume, |n| {
            let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
            s.finished = n;
            wake.notify_all();
        })
    });
    let panic = state
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .panic;
    if let Some(payload) = panic {
        resume_unwind(payload);
    }
    result
}

/// A worker: takes the next item while it is within the window, prepares it, sends it.
fn work<I, T>(
    items: &[I],
    window: usize,
    state: &Mutex<Progress>,
    wake: &Condvar,
    prepare: &(impl Fn(&I) -> T + Sync),
    sender: mpsc::Sender<(usize, T)>,
) {
    lower_priority();
    loop {
        let i = {
            let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
            while !s.stop && s.next < items.len() && s.next >= s.finished + window {
                s = wake.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            if s.stop || s.next >= items.len() {
                return;
            }
            s.next += 1;
            s.next - 1
        };
        match catch_unwind(AssertUnwindSafe(|| prepare(&items[i]))) {
            Ok(value) => {
                if sender.send((i, value)).is_err() {
                    return;
                }
            }
            Err(payload) => {
                let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
                s.stop = true;
                s.panic.get_or_insert(payload);
                wake.notify_all();
                return;
            }
        }
    }
}

/// Makes the calling thread yield to the network's threads: the network's pass is what the
/// run waits for, and preparing photos only has to keep ahead of it.
fn lower_priority() {
    // SAFETY: gettid takes no arguments and touches no memory; setpriority on our own thread
    // id only changes this thread's nice value, and its failure (reported as -1) is harmless.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// The caller's side: reorders what the workers send into batches and consumes them.
fn deliver<T, E>(
    len: usize,
    batch: usize,
    receiver: &mpsc::Receiver<(usize, T)>,
    consume: &mut impl FnMut(Vec<(usize, T)>) -> Result<(), E>,
    finished: impl Fn(usize),
) -> Result<(), E> {
    let mut pending = BTreeMap::new();
    let mut start = 0;
    while start < len {
        let end = (start + batch).min(len);
        let mut items = Vec::with_capacity(end - start);
        for i in start..end {
            let value = loop {
                if let Some(v) = pending.remove(&i) {
                    break v;
                }
                match receiver.recv() {
                    Ok((j, v)) => {
                        pending.insert(j, v);
                    }
                    // Every worker has gone without sending item i: only a worker's panic
                    // does that, and `for_each_batch` re-raises it.
                    Err(_) => return Ok(()),
                }
            };
            items.push((i, value));
        }
        consume(items)?;
        start = end;
        finished(start);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn batches_come_in_order_whatever_order_they_are_prepared_in() {
        let items: Vec<u64> = (0..103).collect();
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let result: Result<(), ()> = for_each_batch(
            &items,
            Pipeline::new(4, 8),
            |&i| {
                // Later items are often faster: out-of-order completion.
                std::thread::sleep(Duration::from_micros((i * 7919) % 500));
                i * 2
            },
            |batch| {
                sizes.push(batch.len());
                seen.extend(batch);
                Ok(())
            },
        );
        assert_eq!(result, Ok(()));
        assert_eq!(
            seen,
            (0..103).map(|i| (i as usize, i * 2)).collect::<Vec<_>>()
        );
        assert_eq!(sizes.iter().sum::<usize>(), 103);
        assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == 8));
    }

    #[test]
    fn at_most_a_window_of_prepared_items_is_held() {
        let items: Vec<usize> = (0..200).collect();
        let alive = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let pipeline = Pipeline::new(3, 5);
        let result: Result<(), ()> = for_each_batch(
            &items,
            pipeline,
            |_| {
                let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
            },
            |batch| {
                std::thread::sleep(Duration::from_millis(1));
                alive.fetch_sub(batch.len(), Ordering::SeqCst);
                Ok(())
            },
        );
        assert_eq!(result, Ok(()));
        let most = most.load(Ordering::SeqCst);
        assert!(most <= pipeline.window, "{most} held at once");
        assert!(most > pipeline.batch, "prepared ahead of the caller");
    }

    #[test]
    fn an_error_stops_the_stream() {
        let items: Vec<usize> = (0..1000).collect();
        let prepared = AtomicUsize::new(0);
        let mut batches = 0;
        let result = for_each_batch(
            &items,
            Pipeline::new(2, 4),
            |_| prepared.fetch_add(1, Ordering::SeqCst),
            |_| {
                batches += 1;
                if batches == 3 {
                    Err("disk full")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(result, Err("disk full"));
        assert!(prepared.load(Ordering::SeqCst) <= 3 * 4 + 8);
    }

    /// A panic on either side ends the stream with that panic, promptly (a hang here would
    /// time the test out).
    #[test]
    fn a_panic_in_prepare_or_consume_is_re_raised_not_a_hang() {
        let items: Vec<usize> = (0..100).collect();
        let prepare_panics = std::panic::catch_unwind(|| {
            let _: Result<(), ()> = for_each_batch(
                &items,
                Pipeline::new(2, 4),
                |&i| assert!(i != 3, "photo 3"),
                |_| Ok(()),
            );
        });
        assert!(prepare_panics.is_err());
        let consume_panics = std::panic::catch_unwind(|| {
            let mut batches = 0;
            let _: Result<(), ()> = for_each_batch(
                &items,
                Pipeline::new(2, 4),
                |_| (),
                |_| {
                    batches += 1;
                    assert!(batches != 2, "batch 2");
                    Ok(())
                },
            );
        });
        assert!(consume_panics.is_err());
    }

    #[test]
    fn an_empty_list_consumes_nothing() {
        let result: Result<(), ()> =
            for_each_batch(&[] as &[u8], Pipeline::new(2, 4), |_| (), |_| Err(()));
        assert_eq!(result, Ok(()));
    }
}
