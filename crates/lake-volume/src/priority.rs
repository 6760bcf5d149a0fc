//! CPU and I/O priority of the committer thread.
//!
//! The committer hashes, compresses and indexes in the background; on a small
//! machine it competes with the file operations it records. It runs in the idle
//! classes (SCHED_IDLE, IOPRIO_CLASS_IDLE) so foreground work wins the CPUs and
//! the disk, and is raised back to normal while someone waits for a commit
//! (fsync, flush), so a busy machine cannot starve a waiter. Failures are
//! ignored: priority is an optimisation, never a reason to fail a mount.
#![allow(unsafe_code)] // sched_setscheduler and ioprio_set per thread: no safe wrapper exists

/// `ioprio_set(2)`: who = a thread id.
const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;
const IOPRIO_CLASS_BE: libc::c_int = 2;
const IOPRIO_CLASS_IDLE: libc::c_int = 3;
/// The best-effort level a thread has by default (nice 0).
const IOPRIO_BE_NORMAL: libc::c_int = 4;

/// The calling thread's id (what the functions below take).
pub fn current_tid() -> libc::pid_t {
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

fn set(tid: libc::pid_t, policy: libc::c_int, ioprio: libc::c_int) {
    let param = libc::sched_param { sched_priority: 0 };
    // On Linux both calls apply to the one thread `tid`, not the whole process.
    unsafe {
        libc::sched_setscheduler(tid, policy, &param);
        libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, ioprio);
    }
}

/// Puts thread `tid` in the idle CPU and I/O classes.
pub fn set_idle(tid: libc::pid_t) {
    set(tid, libc::SCHED_IDLE, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
}

/// Puts thread `tid` back in the normal CPU and I/O classes.
pub fn set_normal(tid: libc::pid_t) {
    set(tid, libc::SCHED_OTHER, (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | IOPRIO_BE_NORMAL);
}

/// The threads that do a volume's background work (the committer and its
/// hashing pool): idle unless raised while someone waits for a commit.
#[derive(Default)]
pub struct Group {
    /// (thread ids, raised now)
    inner: std::sync::Mutex<(Vec<libc::pid_t>, bool)>,
}

impl Group {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<libc::pid_t>, bool)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The calling thread joins the group (idle unless the group is raised now).
    pub fn join(&self) {
        let tid = current_tid();
        let mut g = self.lock();
        g.0.push(tid);
        if !g.1 {
            set_idle(tid);
        }
    }

    /// Every thread of the group to normal priority (no-op if raised already).
    pub fn raise(&self) {
        let mut g = self.lock();
        if !g.1 {
            g.1 = true;
            g.0.iter().for_each(|t| set_normal(*t));
        }
    }

    /// Every thread of the group back to idle (no-op if not raised).
    pub fn lower(&self) {
        let mut g = self.lock();
        if g.1 {
            g.1 = false;
            g.0.iter().for_each(|t| set_idle(*t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_back_on_this_thread() {
        let tid = current_tid();
        std::thread::spawn(move || {
            let me = current_tid();
            assert_ne!(me, tid);
            set_idle(me);
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_IDLE);
            set_normal(me);
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
        })
        .join()
        .expect("thread");
        // The other thread's change left this one alone.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }

    #[test]
    fn group_raise_and_lower() {
        let g = std::sync::Arc::new(Group::default());
        let g2 = g.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (back, seen) = std::sync::mpsc::channel::<libc::c_int>();
        let t = std::thread::spawn(move || {
            g2.join();
            back.send(unsafe { libc::sched_getscheduler(0) }).expect("send");
            rx.recv().expect("recv");
            back.send(unsafe { libc::sched_getscheduler(0) }).expect("send");
            rx.recv().expect("recv");
            back.send(unsafe { libc::sched_getscheduler(0) }).expect("send");
        });
        assert_eq!(seen.recv().expect("joined"), libc::SCHED_IDLE);
        g.raise();
        tx.send(()).expect("send");
        assert_eq!(seen.recv().expect("raised"), libc::SCHED_OTHER);
        g.lower();
        tx.send(()).expect("send");
        assert_eq!(seen.recv().expect("lowered"), libc::SCHED_IDLE);
        t.join().expect("thread");
    }
}
