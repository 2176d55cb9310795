//! Ctrl-C while `adlab` waits for a SLURM array: the wait cancels the array and returns the
//! jobs `interrupted`. A test binary of its own, because the interrupt flag is process-wide.

mod common;
use adlab::launch::slurm::{self, JobStatus};
use common::slurm::*;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn an_interrupt_while_waiting_cancels_the_array() {
    cluster();
    let s = Scratch::new();
    let sweep = s.path().join("sweep");
    let jobs = vec![job(&s, 0, &["train.steps=1000000"])];
    let array = slurm::submit(&launcher(), &jobs, &sweep, &command(&s)).unwrap();

    let started = Instant::now();
    let mut interrupted = false;
    let states = array
        .wait(0.3, |states| {
            // Press Ctrl-C once the job trains.
            if !interrupted && states[0].status == JobStatus::Running {
                interrupted = true;
                adlab::interrupt::request();
            }
            assert!(started.elapsed() < Duration::from_secs(180), "{states:#?}");
        })
        .unwrap();
    assert!(interrupted, "the job never ran: {states:#?}");
    assert_eq!(states[0].status, JobStatus::Interrupted, "{states:#?}");
    assert!(sweep
        .join(format!("slurm/tasks/{}.cancelled", array.array_id))
        .exists());
}
