//! A chaincode's task that a transaction's caller may run while it waits for the transaction.
//!
//! An inproc guest runs as a future: its `main` on a wasmtime fiber, and the peer's side of its
//! connection. A task of its own polls it when it has work; but a transaction handed to that
//! task switches tasks twice (to the guest and back), and tokio's scheduler, after a few such
//! switches in a row, queues the next one and wakes an idle worker thread to look at it. So the
//! caller of a transaction polls the guest's future itself while it waits, if no one else is
//! driving it: the transaction then runs on the caller's task, switching none.
//!
//! The future is always polled with the same waker, which wakes whoever drives it: the caller
//! that claimed it, or the guest's own task when none has. A caller that lets go of it while the
//! future has been woken since its last poll wakes the guest's task, so no wake-up is lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

use crate::sync::lock;

/// The future a guest runs as.
type GuestFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Lets the caller of a transaction run the chaincode's task while it waits.
pub trait Drive: Send + Sync {
    /// Claims the task for the calling task, which is about to hand it a transaction and then
    /// [`Drive::drive`] it; `false` when another caller drives it now.
    fn claim(&self) -> bool;
    /// Polls the task once, on behalf of the claiming caller, whose waker is now `waker`.
    /// Returns at once if the task is being polled elsewhere or has ended.
    fn drive(&self, waker: &Waker);
    /// Lets go of a claim.
    fn release(&self);
}

/// A guest's future, shared by its own task and the callers that drive it.
pub struct SharedTask<T> {
    future: Mutex<Option<GuestFuture<T>>>,
    output: Mutex<Option<T>>,
    /// The caller driving the task, if one is, and its waker once it waits: until then a wake
    /// only marks the task woken, as the caller is about to poll it.
    caller: Mutex<Option<Option<Waker>>>,
    /// The task's own task, polling it when no caller does.
    own: AtomicWaker,
    /// Woken since the last poll began.
    woken: AtomicBool,
    /// The waker the future is always polled with.
    waker: Waker,
}

impl<T: Send + 'static> SharedTask<T> {
    /// A task for a future given later with [`SharedTask::set`].
    pub fn new() -> Arc<Self> {
        Arc::new_cyclic(|shared: &Weak<Self>| Self {
            future: Mutex::new(None),
            output: Mutex::new(None),
            caller: Mutex::new(None),
            own: AtomicWaker::new(),
            woken: AtomicBool::new(false),
            waker: Waker::from(Arc::new(TaskWaker {
                shared: shared.clone(),
            })),
        })
    }

    /// Gives the task its future.
    pub fn set(&self, future: impl Future<Output = T> + Send + 'static) {
        *lock(&self.future) = Some(Box::pin(future));
    }

    /// Runs the task on a task of its own until it ends, polling it whenever it is woken and
    /// no caller drives it; its output.
    pub async fn run(self: Arc<Self>) -> T {
        std::future::poll_fn(|context| {
            self.own.register(context.waker());
            if lock(&self.caller).is_none() {
                self.poll_once();
            }
            match lock(&self.output).take() {
                Some(output) => Poll::Ready(output),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Polls the future once, unless it is being polled elsewhere or has ended.
    fn poll_once(&self) {
        let Ok(mut slot) = self.future.try_lock() else {
            return;
        };
        let Some(future) = slot.as_mut() else {
            return;
        };
        self.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&self.waker)) {
            *slot = None;
            drop(slot);
            *lock(&self.output) = Some(output);
            self.own.wake();
            return;
        }
        drop(slot);
        if self.woken.load(Ordering::SeqCst) {
            self.notify();
        }
    }

    /// Marks the task woken and wakes whoever drives it.
    fn wake(&self) {
        self.woken.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// Wakes whoever drives the task: its caller, or its own task when no caller has claimed
    /// it. A caller that has claimed it but does not wait yet polls it next anyway. A caller
    /// that found the task being polled elsewhere is woken by the poll's end if the task was
    /// woken meanwhile.
    fn notify(&self) {
        match lock(&self.caller).as_ref() {
            Some(Some(caller)) => caller.wake_by_ref(),
            Some(None) => {}
            None => self.own.wake(),
        }
    }
}

impl<T: Send + 'static> Drive for SharedTask<T> {
    fn claim(&self) -> bool {
        let mut caller = lock(&self.caller);
        if caller.is_some() {
            return false;
        }
        *caller = Some(None);
        true
    }

    fn drive(&self, waker: &Waker) {
        {
            let mut caller = lock(&self.caller);
            match caller.as_mut() {
                Some(Some(current)) => current.clone_from(waker),
                Some(current) => *current = Some(waker.clone()),
                None => return,
            }
        }
        self.poll_once();
    }

    fn release(&self) {
        *lock(&self.caller) = None;
        if self.woken.load(Ordering::SeqCst) {
            self.own.wake();
        }
    }
}

/// The waker a guest's future is polled with.
struct TaskWaker<T> {
    shared: Weak<SharedTask<T>>,
}

impl<T: Send + 'static> Wake for TaskWaker<T> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.shared.upgrade() {
            shared.wake();
        }
    }
}

/// Waits for `done`, first driving the chaincode's task through `drive` once if it could claim
/// it. If the transaction does not end within that poll (it waits for the peer, or the caller's
/// budget of work ran out), the claim is let go of at once and the chaincode's own task goes on
/// with it, so that a caller waiting its turn never holds up the chaincode. Its output tells
/// whether the transaction ended within that first poll.
pub struct DrivenWait<'a, F> {
    done: F,
    drive: &'a dyn Drive,
    claimed: bool,
    waited: bool,
}

impl<'a, F: Future + Unpin> DrivenWait<'a, F> {
    /// Claims the task (when no other caller drives it) before the transaction is handed over,
    /// so that handing it over wakes neither the task nor the caller, which polls it next. The
    /// caller must poll this at once, with no wait in between, or [`DrivenWait::let_go`]: until
    /// then nothing runs the task.
    pub fn claim(drive: &'a dyn Drive, done: F) -> Self {
        let claimed = drive.claim();
        Self {
            done,
            drive,
            claimed,
            waited: false,
        }
    }
}

impl<F> DrivenWait<'_, F> {
    /// Gives up the claim, if this wait holds it; the wait then only waits.
    pub fn let_go(&mut self) {
        if self.claimed {
            self.claimed = false;
            self.drive.release();
        }
    }
}

impl<F: Future + Unpin> Future for DrivenWait<'_, F> {
    type Output = (F::Output, bool);

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        if self.claimed {
            self.drive.drive(context.waker());
        }
        let polled = Pin::new(&mut self.done).poll(context);
        self.let_go();
        match polled {
            Poll::Ready(output) => Poll::Ready((output, self.waited)),
            Poll::Pending => {
                self.waited = true;
                Poll::Pending
            }
        }
    }
}

impl<F> Drop for DrivenWait<'_, F> {
    fn drop(&mut self) {
        self.let_go();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::mpsc;

    use super::*;

    /// A waker that counts how often it is woken.
    struct Counted(AtomicUsize);

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counted() -> (Arc<Counted>, Waker) {
        let count = Arc::new(Counted(AtomicUsize::new(0)));
        (Arc::clone(&count), Waker::from(count))
    }

    fn wakes(count: &Counted) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    /// A task that adds up the numbers it is sent until their channel closes, polled once by its
    /// own task (so that it waits for a number).
    struct Adding {
        shared: Arc<SharedTask<u32>>,
        numbers: Option<mpsc::UnboundedSender<u32>>,
        own: Arc<Counted>,
        own_waker: Waker,
        run: Pin<Box<dyn Future<Output = u32> + Send>>,
    }

    impl Adding {
        fn started() -> Self {
            let shared = SharedTask::new();
            let (numbers, mut received) = mpsc::unbounded_channel();
            shared.set(async move {
                let mut sum = 0;
                while let Some(number) = received.recv().await {
                    sum += number;
                }
                sum
            });
            let (own, own_waker) = counted();
            let mut adding = Self {
                run: Box::pin(Arc::clone(&shared).run()),
                shared,
                numbers: Some(numbers),
                own,
                own_waker,
            };
            assert!(adding.poll_own().is_pending());
            adding
        }

        fn send(&self, number: u32) {
            self.numbers
                .as_ref()
                .map(|numbers| numbers.send(number))
                .expect("the numbers are open")
                .expect("the task receives");
        }

        /// Closes the numbers: the task's sum is ready once it is polled.
        fn close(&mut self) {
            self.numbers = None;
        }

        fn poll_own(&mut self) -> Poll<u32> {
            self.run
                .as_mut()
                .poll(&mut Context::from_waker(&self.own_waker))
        }

        fn own_wakes(&self) -> usize {
            wakes(&self.own)
        }
    }

    #[test]
    fn a_wake_while_a_caller_drives_goes_to_the_caller_and_its_release_hands_on_to_the_task() {
        let mut adding = Adding::started();
        assert!(adding.shared.claim());
        assert!(
            !adding.shared.claim(),
            "a second caller may not claim a claimed task"
        );
        adding.send(1);
        assert_eq!(
            adding.own_wakes(),
            0,
            "the claiming caller polls next, so no one is woken"
        );

        let (caller, caller_waker) = counted();
        adding.shared.drive(&caller_waker);
        adding.send(2);
        assert_eq!(wakes(&caller), 1, "the driving caller is woken");
        assert_eq!(adding.own_wakes(), 0, "the task's own task is not");

        adding.shared.release();
        assert_eq!(
            adding.own_wakes(),
            1,
            "woken since the caller's poll: the own task goes on"
        );
        adding.close();
        assert_eq!(
            adding.poll_own(),
            Poll::Ready(3),
            "the own task finished what the caller left"
        );
    }

    #[test]
    fn a_release_with_nothing_to_do_wakes_no_one_and_a_later_wake_reaches_the_task() {
        let mut adding = Adding::started();
        assert!(adding.shared.claim());
        adding.send(5);
        let (_, caller_waker) = counted();
        adding.shared.drive(&caller_waker);
        adding.shared.release();
        assert_eq!(
            adding.own_wakes(),
            0,
            "the caller's poll took the number: nothing is left"
        );

        adding.send(7);
        assert_eq!(
            adding.own_wakes(),
            1,
            "with no caller, a wake goes to the own task"
        );
        adding.close();
        assert_eq!(adding.poll_own(), Poll::Ready(12));
    }

    #[test]
    fn the_own_task_leaves_a_claimed_task_to_its_caller() {
        let mut adding = Adding::started();
        assert!(adding.shared.claim());
        adding.close();
        assert!(
            adding.poll_own().is_pending(),
            "the own task does not poll a task a caller has claimed"
        );
        let (_, caller_waker) = counted();
        adding.shared.drive(&caller_waker);
        adding.shared.release();
        assert_eq!(
            adding.poll_own(),
            Poll::Ready(0),
            "the caller's poll ended the task, and its output is the own task's"
        );
    }

    #[test]
    fn a_wait_that_lets_go_before_its_first_poll_leaves_the_task_to_its_own_task() {
        let adding = Adding::started();
        let (_done, reply) = tokio::sync::oneshot::channel::<u32>();
        let mut waiting = DrivenWait::claim(&*adding.shared, reply);
        waiting.let_go();
        adding.send(1);
        assert_eq!(
            adding.own_wakes(),
            1,
            "with the claim given up, a wake reaches the task's own task"
        );
    }

    #[test]
    fn a_wait_lets_go_of_its_claim_when_its_transaction_does_not_end_in_its_first_poll() {
        let adding = Adding::started();
        let (done, reply) = tokio::sync::oneshot::channel::<u32>();
        let mut waiting = Box::pin(DrivenWait::claim(&*adding.shared, reply));
        let (_, caller_waker) = counted();
        assert!(
            waiting
                .as_mut()
                .poll(&mut Context::from_waker(&caller_waker))
                .is_pending()
        );
        assert!(
            adding.shared.claim(),
            "the waiting caller no longer holds the task"
        );
        adding.shared.release();
        done.send(9).expect("the caller waits");
        assert!(matches!(
            waiting
                .as_mut()
                .poll(&mut Context::from_waker(&caller_waker)),
            Poll::Ready((Ok(9), true))
        ));
    }
}
