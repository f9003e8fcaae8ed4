//! Syscall-level realtime check: runs audio-thread code on a thread confined by
//! a seccomp filter, so *any* system call it makes — a futex wait from a
//! contended lock, mmap/brk from an allocation, a clock read that leaves the
//! vDSO, a write from logging, a sleep — traps. The trap handler writes the
//! syscall number and the section that made it to the test's stderr and ends
//! the process, so the check runs in a child process (the test binary
//! re-running one of its own ignored tests, see [`run_child`]).
//!
//! The filter allows only what the harness itself needs, each narrowed by its
//! arguments so the code under test cannot slip through:
//! * `ppoll` with no file descriptors: the harness's pacing sleep ([`sleep`]);
//!   audio code never polls nothing.
//! * `write` to one private descriptor (a copy of stderr made before
//!   confinement): the trap handler's report. Logging writes to 1 or 2 and traps.
//! * `exit_group`: the trap handler's exit.
//!
//! Linux x86-64 only (syscall numbers and the `siginfo` layout are the arch's).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The line the trap handler writes: `SECCOMP_TRAP syscall=<nr> in=<section>`.
pub const TRAP_MARK: &str = "SECCOMP_TRAP syscall=";
/// Exit code of a trapped child.
pub const TRAP_EXIT: i32 = 86;

static REPORT_FD: AtomicI32 = AtomicI32::new(-1);
static SECTION_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static SECTION_LEN: AtomicUsize = AtomicUsize::new(0);

/// Names the code about to run on the confined thread, for the trap report
/// (two atomic stores: no syscall).
#[inline]
pub fn section(name: &'static str) {
    SECTION_LEN.store(0, Ordering::Relaxed);
    SECTION_PTR.store(name.as_ptr() as *mut u8, Ordering::Relaxed);
    SECTION_LEN.store(name.len(), Ordering::Release);
}

/// `siginfo_t` for SIGSYS on x86-64: the `_sigsys` member of the union.
#[repr(C)]
struct SigsysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: *mut libc::c_void,
    syscall: i32,
    arch: u32,
}

/// Async-signal-safe: formats into a stack buffer, one `write`, `_exit`.
extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid siginfo; for SIGSYS it has the _sigsys layout.
    let nr = unsafe { (*(info as *const SigsysInfo)).syscall };
    let mut buf = [0u8; 256];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if n < buf.len() {
                buf[n] = b;
                n += 1;
            }
        }
    };
    put(b"\n");
    put(TRAP_MARK.as_bytes());
    let mut digits = [0u8; 12];
    let (mut v, mut d) = (nr.unsigned_abs(), digits.len());
    loop {
        d -= 1;
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[d..]);
    put(b" in=");
    let len = SECTION_LEN.load(Ordering::Acquire);
    let ptr = SECTION_PTR.load(Ordering::Relaxed);
    if !ptr.is_null() {
        // SAFETY: `section` stores pointer and length of a &'static str.
        put(unsafe { std::slice::from_raw_parts(ptr, len) });
    }
    put(b"\n");
    // SAFETY: plain syscalls, both allowed by the filter.
    unsafe {
        libc::write(REPORT_FD.load(Ordering::Relaxed), buf.as_ptr().cast(), n);
        libc::_exit(TRAP_EXIT);
    }
}

fn arg_eq(index: u8, value: u64) -> SeccompRule {
    SeccompRule::new(vec![SeccompCondition::new(
        index,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::Eq,
        value,
    )
    .expect("condition")])
    .expect("rule")
}

fn filter(report_fd: i32) -> BpfProgram {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = [
        (libc::SYS_ppoll, vec![arg_eq(1, 0)]),
        (libc::SYS_write, vec![arg_eq(0, report_fd as u64)]),
        (libc::SYS_exit_group, vec![]),
    ]
    .into_iter()
    .collect();
    SeccompFilter::new(
        rules,
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .expect("seccomp filter")
    .try_into()
    .expect("seccomp BPF")
}

/// Sleeps on the confined thread: `ppoll` with no descriptors (allowed by the filter).
pub fn sleep(d: Duration) {
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    };
    // SAFETY: no descriptors, a valid timeout, no signal mask.
    unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            std::ptr::null_mut::<libc::pollfd>(),
            0usize,
            &ts as *const libc::timespec,
            std::ptr::null::<libc::sigset_t>(),
            0usize,
        );
    }
}

/// Sleeps until `deadline` (read from the vDSO clock).
pub fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        sleep(deadline - now);
    }
}

/// Runs `body` on a new thread confined by the filter and returns its result
/// to the calling (unconfined) thread. The confined thread never exits (a
/// thread exit frees memory and wakes joiners: syscalls), it sleeps forever
/// once done; the caller should end the process after reading the result.
/// A trapped syscall ends the process with [`TRAP_EXIT`] and the report line.
/// `timeout` bounds the wait (panics when exceeded).
pub fn run_confined<T: Clone + Send + Sync + 'static>(
    timeout: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    // SAFETY: duplicating stderr and installing a SIGSYS handler before any
    // confined code runs; the handler is async-signal-safe.
    unsafe {
        let fd = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 100);
        assert!(fd >= 0, "dup stderr");
        REPORT_FD.store(fd, Ordering::Relaxed);
        let mut sa: libc::sigaction = std::mem::zeroed();
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            on_sigsys;
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()), 0);
    }
    let prog = filter(REPORT_FD.load(Ordering::Relaxed));
    let result: Arc<OnceLock<T>> = Arc::new(OnceLock::new());
    let ready = Arc::new(AtomicBool::new(false));
    {
        let (result, ready) = (result.clone(), ready.clone());
        std::thread::Builder::new()
            .name("confined-audio".into())
            .spawn(move || {
                seccompiler::apply_filter(&prog).expect("install seccomp filter");
                ready.store(true, Ordering::Release);
                section("harness");
                let r = body();
                section("harness: handing over the result");
                let _ = result.set(r);
                loop {
                    sleep(Duration::from_secs(1));
                }
            })
            .expect("spawn confined thread");
    }
    let t0 = Instant::now();
    loop {
        if let Some(r) = result.get() {
            // The confined thread keeps its handle (it never exits): copy out.
            return r.clone();
        }
        assert!(
            t0.elapsed() < timeout,
            "the confined thread did not finish in {timeout:?} (confined: {})",
            ready.load(Ordering::Acquire)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a child process run of a confined check came back with.
pub struct ChildOutcome {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ChildOutcome {
    /// The trapped syscall and the section that made it, if the child was trapped.
    pub fn trapped(&self) -> Option<(i64, String)> {
        let line = self.stderr.lines().find(|l| l.starts_with(TRAP_MARK))?;
        let rest = &line[TRAP_MARK.len()..];
        let (nr, section) = rest.split_once(" in=")?;
        Some((nr.parse().ok()?, section.to_string()))
    }

    /// The child's summary: stdout from `mark` to the end of its line (the
    /// test harness may have printed the test's name before it).
    pub fn summary(&self, mark: &str) -> Option<String> {
        self.stdout
            .lines()
            .find_map(|l| l.find(mark).map(|i| l[i..].to_string()))
    }

    /// One line for failure messages: status, trap, stderr tail.
    pub fn describe(&self) -> String {
        let trap = self
            .trapped()
            .map(|(nr, s)| format!("trapped syscall {nr} ({}) in `{s}`", syscall_name(nr)))
            .unwrap_or_else(|| "no trap".into());
        format!(
            "{:?}, {trap}; stdout tail:\n{}\nstderr tail:\n{}",
            self.status,
            &self.stdout[self.stdout.len().saturating_sub(1500)..],
            &self.stderr[self.stderr.len().saturating_sub(1500)..]
        )
    }
}

/// Re-runs this test binary's ignored test `name` with `env` set.
pub fn run_child(name: &str, env: &[(&str, &str)]) -> ChildOutcome {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .output()
        .expect("spawn child");
    ChildOutcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Name of an x86-64 syscall number (the ones a realtime violation makes).
pub fn syscall_name(nr: i64) -> &'static str {
    match nr {
        0 => "read",
        1 => "write",
        7 => "poll",
        9 => "mmap",
        10 => "mprotect",
        11 => "munmap",
        12 => "brk",
        13 => "rt_sigaction",
        14 => "rt_sigprocmask",
        20 => "writev",
        24 => "sched_yield",
        25 => "mremap",
        28 => "madvise",
        35 => "nanosleep",
        39 => "getpid",
        60 => "exit",
        186 => "gettid",
        202 => "futex",
        228 => "clock_gettime",
        230 => "clock_nanosleep",
        231 => "exit_group",
        257 => "openat",
        271 => "ppoll",
        318 => "getrandom",
        _ => "see asm/unistd_64.h",
    }
}
