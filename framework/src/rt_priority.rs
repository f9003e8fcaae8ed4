//! Realtime scheduling for the calling thread, undone on drop.
//!
//! Our own few lines rather than a crate: the virtual device needs only "raise
//! this thread, put it back after", and the audio backends we ship on (cpal,
//! JACK, nice-plug's hosts) already raise their own callback threads.

/// Holds the thread at SCHED_FIFO until dropped, then restores its old policy.
pub struct RealtimePriority {
    #[cfg(target_os = "linux")]
    old: (libc::c_int, libc::sched_param),
}

impl RealtimePriority {
    /// Priority used: above normal threads, below what JACK (70+) and the
    /// kernel's own realtime threads take.
    pub const PRIORITY: i32 = 60;

    /// Raises the calling thread; `None` where the OS refuses or has no such policy.
    pub fn raise() -> Option<Self> {
        #[cfg(target_os = "linux")]
        // SAFETY: plain libc calls on the current thread's handle with valid
        // pointers to stack values.
        unsafe {
            let me = libc::pthread_self();
            let mut policy = 0;
            let mut old: libc::sched_param = std::mem::zeroed();
            if libc::pthread_getschedparam(me, &mut policy, &mut old) != 0 {
                return None;
            }
            let mut param: libc::sched_param = std::mem::zeroed();
            param.sched_priority = Self::PRIORITY;
            if libc::pthread_setschedparam(me, libc::SCHED_FIFO, &param) != 0 {
                return None;
            }
            Some(Self { old: (policy, old) })
        }
        #[cfg(not(target_os = "linux"))]
        None
    }
}

impl Drop for RealtimePriority {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        // SAFETY: as in `raise`.
        unsafe {
            libc::pthread_setschedparam(libc::pthread_self(), self.old.0, &self.old.1);
        }
    }
}
