//! Embedded ClickHouse (chDB) loaded at run time from `libchdb.so`.
//!
//! Loading at run time keeps the 566 MB library out of the build: vigil links nothing, and the
//! library is fetched by `scripts/services/chdb.sh` (pinned npm package). chDB holds one storage
//! path per process and a connection runs one statement at a time, so every store in a process
//! shares the connections to its path, each behind a mutex: one for readers and writers, one
//! for background work ([`ChdbConnection`]).

pub use super::Priority;
use crate::StoreError;
use libloading::Library;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The chDB release vigil is built and tested against (26.5 lacks stream inserts).
pub const CHDB_VERSION: &str = "26.7.3-stable.1";

/// Command that installs the library, quoted in errors.
pub const INSTALL_HINT: &str = "bash scripts/services/chdb.sh install";

type ConnectFn = unsafe extern "C" fn(c_int, *mut *mut c_char) -> *mut *mut c_void;
type CloseFn = unsafe extern "C" fn(*mut *mut c_void);
type QueryFn =
    unsafe extern "C" fn(*mut c_void, *const c_char, usize, *const c_char, usize) -> *mut c_void;
type ResultBufFn = unsafe extern "C" fn(*mut c_void) -> *mut c_char;
type ResultLenFn = unsafe extern "C" fn(*mut c_void) -> usize;
type ResultErrFn = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type DestroyResultFn = unsafe extern "C" fn(*mut c_void);
type StreamInsertFn =
    unsafe extern "C" fn(*mut c_void, *const c_char, usize, *const c_char, usize) -> *mut c_void;
type StreamErrFn = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type StreamAppendFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> c_int;
type StreamDoneFn = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
type DestroyStreamFn = unsafe extern "C" fn(*mut c_void);
type VersionFn = unsafe extern "C" fn() -> *const c_char;

struct ChdbLib {
    _lib: Library,
    connect: ConnectFn,
    close: CloseFn,
    query: QueryFn,
    result_buffer: ResultBufFn,
    result_length: ResultLenFn,
    result_error: ResultErrFn,
    destroy_result: DestroyResultFn,
    stream_insert: StreamInsertFn,
    stream_error: StreamErrFn,
    stream_append: StreamAppendFn,
    stream_done: StreamDoneFn,
    destroy_stream: DestroyStreamFn,
    version: VersionFn,
}

/// Where vigil caches downloaded artefacts: `$VIGIL_CACHE_DIR`, else `$XDG_CACHE_HOME/vigil`,
/// else `~/.cache/vigil` (the same rule as `scripts/services/common.sh`).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VIGIL_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("vigil");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("vigil")
}

/// `$VIGIL_CHDB_LIB`, else the cache location the install script writes to.
pub fn library_path() -> PathBuf {
    match std::env::var_os("VIGIL_CHDB_LIB") {
        Some(p) => PathBuf::from(p),
        None => cache_dir()
            .join("chdb")
            .join(CHDB_VERSION)
            .join("libchdb.so"),
    }
}

fn load_library(path: &Path) -> Result<ChdbLib, StoreError> {
    if !path.exists() {
        return Err(StoreError::LibraryMissing {
            path: path.display().to_string(),
            hint: INSTALL_HINT.to_string(),
        });
    }
    // SAFETY: loading a shared library runs its initialisers; libchdb is a plain C API library.
    let lib = unsafe { Library::new(path) }.map_err(|e| {
        StoreError::Connect(format!(
            "cannot load {}: {e} (reinstall with `{INSTALL_HINT}`)",
            path.display()
        ))
    })?;
    macro_rules! sym {
        ($name:literal) => {{
            // SAFETY: the symbol's type matches chdb.h of CHDB_VERSION.
            let s = unsafe { lib.get($name) }.map_err(|e| {
                StoreError::Connect(format!(
                    "{} lacks {}: {e}; vigil needs chDB {CHDB_VERSION} (`{INSTALL_HINT}`)",
                    path.display(),
                    String::from_utf8_lossy(&$name[..$name.len() - 1])
                ))
            })?;
            *s
        }};
    }
    let connect: ConnectFn = sym!(b"chdb_connect\0");
    let close: CloseFn = sym!(b"chdb_close_conn\0");
    let query: QueryFn = sym!(b"chdb_query_n\0");
    let result_buffer: ResultBufFn = sym!(b"chdb_result_buffer\0");
    let result_length: ResultLenFn = sym!(b"chdb_result_length\0");
    let result_error: ResultErrFn = sym!(b"chdb_result_error\0");
    let destroy_result: DestroyResultFn = sym!(b"chdb_destroy_query_result\0");
    let stream_insert: StreamInsertFn = sym!(b"chdb_stream_insert_n\0");
    let stream_error: StreamErrFn = sym!(b"chdb_stream_insert_error\0");
    let stream_append: StreamAppendFn = sym!(b"chdb_stream_append\0");
    let stream_done: StreamDoneFn = sym!(b"chdb_stream_done\0");
    let destroy_stream: DestroyStreamFn = sym!(b"chdb_destroy_insert_stream\0");
    let version: VersionFn = sym!(b"chdb_version\0");
    Ok(ChdbLib {
        _lib: lib,
        connect,
        close,
        query,
        result_buffer,
        result_length,
        result_error,
        destroy_result,
        stream_insert,
        stream_error,
        stream_append,
        stream_done,
        destroy_stream,
        version,
    })
}

extern "C" {
    // glibc: like atexit, but the handler receives the exit status.
    fn on_exit(function: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
    fn fflush(stream: *mut c_void) -> c_int;
    fn _exit(status: c_int) -> !;
}

/// Ends the process before libchdb's C++ static destructors run.
///
/// Those destructors can deadlock against chDB's own background threads at exit (seen: `vigil
/// demo` hanging in `__run_exit_handlers` after printing its summary). Nothing is lost by
/// skipping them: every statement, inserts included, completes synchronously, and MergeTree parts
/// are on disk when it returns; an interrupted background merge is simply redone later.
extern "C" fn exit_before_chdb_teardown(status: c_int, _: *mut c_void) {
    // SAFETY: flushing all C stdio streams and ending the process are always sound at exit.
    unsafe {
        fflush(std::ptr::null_mut());
        _exit(status)
    }
}

/// Ends the process with `code`. When libchdb was loaded, it skips the C++ exit-time
/// destructors (see [`exit_before_chdb_teardown`]): libchdb keeps registering more of them while
/// queries run, so a hook registered at load time cannot be sure to run first. Binaries call this
/// as their last act; stdout and stderr are flushed first.
pub fn exit_process(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if LIB.get().is_some() {
        // SAFETY: see exit_before_chdb_teardown.
        unsafe {
            fflush(std::ptr::null_mut());
            _exit(code)
        }
    }
    std::process::exit(code)
}

static LIB: OnceLock<Result<ChdbLib, StoreError>> = OnceLock::new();

fn library() -> Result<&'static ChdbLib, StoreError> {
    LIB.get_or_init(|| {
        let lib = load_library(&library_path())?;
        // Registered after the library's own exit-time destructors, so it runs before them.
        // SAFETY: registers a plain function with no captured state.
        unsafe { on_exit(exit_before_chdb_teardown, std::ptr::null_mut()) };
        Ok(lib)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The process's chDB store at one path: two connections to it, each behind its mutex.
///
/// chDB runs one statement at a time per connection and one storage path per process, but
/// several connections to that path run side by side (libchdb 26.7: a 6 ms query on a second
/// connection answered while a 0.9 s scan ran on the first). Foreground statements (pages, the
/// API, the collector's inserts) share the first connection; background ones (the rollup
/// compactor) get their own, opened on first use with `max_threads` halved and at nice 19, so
/// a reader never queues behind a compactor statement and takes the CPU from it. Background
/// statements still give way before they start: only when no foreground statement is waiting
/// or has finished in the last [`BACKGROUND_GRACE`] (a page runs its queries one after
/// another), and after at most [`BACKGROUND_MAX_WAIT`] so a busy dashboard cannot starve them.
pub struct ChdbConnection {
    lib: &'static ChdbLib,
    handle: Mutex<*mut *mut c_void>,
    /// The background statements' connection; null until the first one.
    background: Mutex<*mut *mut c_void>,
    /// Whether the background connection failed to open (then it is not tried again).
    background_failed: AtomicBool,
    /// `chdb_connect`'s arguments, for the background connection.
    args: Vec<CString>,
    path: PathBuf,
    /// Foreground statements waiting for or holding the connection.
    foreground: AtomicUsize,
    /// When the last foreground statement finished, in ms since `opened`.
    foreground_done_ms: AtomicU64,
    opened: Instant,
}

/// A poisoned connection mutex (a statement panicked while holding it).
fn poisoned<T>(_: std::sync::PoisonError<T>) -> StoreError {
    StoreError::Connect("chDB connection poisoned".into())
}

/// The background connection's settings besides `max_threads`. `os_thread_priority = 19`
/// runs its statements' threads at nice 19, so the kernel hands a core to a reader's thread
/// whenever one is ready. Measured on the 100 M-event store, a 500 ms reader query beside a
/// 6.6 s one-thread background scan: 750 ms at nice 0, 500 ms (as alone) at nice 19; the
/// scan took 6.9 s instead of 6.6 s.
pub const BACKGROUND_SETTINGS: &str = "os_thread_priority = 19";

/// The nice value of the embedded ClickHouse's part-merge threads (`MergeMutate`). Merges are
/// background work, and after a large load they run for minutes in the process that serves
/// the pages: at 100 M events a page statement of 28 ms took 119 ms beside them (issue #17).
/// At nice 10 a merge thread gets about a tenth of what a page's thread gets of a contended
/// core, and still about a tenth beside the inserts of a saturating ingest, so parts keep
/// being merged (nice 19 would leave them to pile up until ClickHouse delays inserts).
/// ClickHouse's own setting for this (`os_threads_nice_value_merge_mutate`) is accepted by
/// chDB 26.7 but not applied (measured: merge threads at nice 0), so the store sets it on the
/// threads itself.
pub const MERGE_NICE: i32 = 10;

/// When the merge threads were last looked for (ms since the Unix epoch).
static MERGES_RENICED_MS: AtomicU64 = AtomicU64::new(0);

/// Sets [`MERGE_NICE`] on this process's `MergeMutate` threads, at most once a second (the
/// pool creates them when it first merges, then keeps them), and returns how many it set.
/// A thread's nice value is its own on Linux; elsewhere this does nothing.
pub fn renice_merge_threads() -> usize {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let last = MERGES_RENICED_MS.load(Ordering::Relaxed);
    if now < last + 1000
        || MERGES_RENICED_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return 0;
    }
    renice_threads_named("MergeMutate", MERGE_NICE)
}

#[cfg(target_os = "linux")]
fn renice_threads_named(name: &str, nice: i32) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut set = 0;
    for task in tasks.flatten() {
        let is_named = std::fs::read_to_string(task.path().join("comm"))
            .is_ok_and(|comm| comm.trim_end() == name);
        let tid = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok());
        if let (true, Some(tid)) = (is_named, tid) {
            // SAFETY: plain system call on a thread id of this process; a thread that ended
            // meanwhile makes it fail, which is fine.
            if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } == 0 {
                set += 1;
            }
        }
    }
    set
}

#[cfg(not(target_os = "linux"))]
fn renice_threads_named(_name: &str, _nice: i32) -> usize {
    0
}

/// How long after a foreground statement a background one waits (see [`ChdbConnection`]).
pub const BACKGROUND_GRACE: Duration = Duration::from_millis(100);
/// The longest a background statement defers to foreground ones. Under back-to-back page
/// requests (no gap of `BACKGROUND_GRACE`) the compactor still runs a statement about every
/// second (5 s made a 10 M-event backfill pass take 12 minutes under `vigil bench pages`).
pub const BACKGROUND_MAX_WAIT: Duration = Duration::from_secs(1);

/// Logs, when dropped (the statement done), how long a statement waited for the connection
/// and how long it ran.
struct StatementTiming<'a> {
    sql: &'a str,
    priority: Priority,
    wait: Duration,
    started: Instant,
}

impl Drop for StatementTiming<'_> {
    fn drop(&mut self) {
        tracing::debug!(
            wait_ms = self.wait.as_secs_f64() * 1000.0,
            run_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            background = self.priority == Priority::Background,
            sql = %self.sql.split_whitespace().take(24).collect::<Vec<_>>().join(" "),
            "chdb statement"
        );
    }
}

/// A foreground statement's claim on the connection, released (and timed) on drop.
struct ForegroundClaim<'a>(&'a ChdbConnection);

impl Drop for ForegroundClaim<'_> {
    fn drop(&mut self) {
        let c = self.0;
        c.foreground_done_ms
            .store(c.opened.elapsed().as_millis() as u64, Ordering::Release);
        c.foreground.fetch_sub(1, Ordering::AcqRel);
    }
}

// SAFETY: the raw handle is only dereferenced while the mutex is held, and chDB allows a
// connection to be used from any thread one statement at a time.
unsafe impl Send for ChdbConnection {}
unsafe impl Sync for ChdbConnection {}

impl Drop for ChdbConnection {
    fn drop(&mut self) {
        if let Ok(mut h) = self.background.lock() {
            if !h.is_null() {
                // SAFETY: handle came from chdb_connect and is closed once, before the first
                // connection (libchdb keeps the store open while any connection is).
                unsafe { (self.lib.close)(*h) };
                *h = std::ptr::null_mut();
            }
        }
        if let Ok(mut h) = self.handle.lock() {
            if !h.is_null() {
                // SAFETY: handle came from chdb_connect and is closed once.
                unsafe { (self.lib.close)(*h) };
                *h = std::ptr::null_mut();
            }
        }
        // Exit handlers run last-registered first, and libchdb registers more of its own
        // destructors lazily while queries run (seen: `vigil serve` with the gateway hanging in
        // `__run_exit_handlers` inside libchdb after "stopped"). Registering again now puts ours
        // in front of every one registered so far.
        // SAFETY: registers a plain function with no captured state.
        unsafe { on_exit(exit_before_chdb_teardown, std::ptr::null_mut()) };
    }
}

fn cstr_opt(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: chDB returns NUL-terminated strings valid until the owning handle is destroyed.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// Statements run so far by this process (for [`keep_exit_handler_first`]).
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// libchdb registers C++ destructors lazily, while statements run, and exit handlers run
/// last-registered first: ours must be registered again after those, or a process that exits
/// normally (a test binary; `vigil` itself exits through [`exit_process`]) runs libchdb's teardown
/// and can crash or hang in it. Re-registering after every statement would grow glibc's handler
/// list without bound in a server, so it happens after statements 1, 2, 4, 8, …: the new kinds
/// of statement that trigger lazy registrations come early in a process's life.
fn keep_exit_handler_first() {
    let n = STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        // SAFETY: registers a plain function with no captured state.
        unsafe { on_exit(exit_before_chdb_teardown, std::ptr::null_mut()) };
    }
}

/// `chdb_connect` with `args` (program name first); `None` when it fails.
fn connect(lib: &ChdbLib, args: &[CString]) -> Option<*mut *mut c_void> {
    let mut argv: Vec<*mut c_char> = args.iter().map(|c| c.as_ptr() as *mut c_char).collect();
    // SAFETY: argv points at live NUL-terminated strings for the duration of the call.
    let handle = unsafe { (lib.connect)(argv.len() as c_int, argv.as_mut_ptr()) };
    (!handle.is_null()).then_some(handle)
}

impl ChdbConnection {
    /// Opens (or reuses) the process's connection for `path`.
    pub fn open(path: &Path) -> Result<Arc<ChdbConnection>, StoreError> {
        static OPEN: OnceLock<Mutex<Option<Arc<ChdbConnection>>>> = OnceLock::new();
        let lib = library()?;
        std::fs::create_dir_all(path).map_err(|e| {
            StoreError::Connect(format!(
                "cannot create chDB directory {}: {e}",
                path.display()
            ))
        })?;
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let slot = OPEN.get_or_init(|| Mutex::new(None));
        let mut guard = slot
            .lock()
            .map_err(|_| StoreError::Connect("chDB registry poisoned".into()))?;
        if let Some(conn) = guard.as_ref() {
            if conn.path == path {
                return Ok(conn.clone());
            }
            return Err(StoreError::Connect(format!(
                "chDB holds one storage path per process: {} is open, cannot also open {} \
                 (use databases inside one path instead: chdb://{}?database=NAME)",
                conn.path.display(),
                path.display(),
                conn.path.display()
            )));
        }
        let args = [
            "vigil".to_string(),
            format!("--path={}", path.display()),
            // Typed queries decode JSONEachRow: keep 64-bit integers as JSON numbers.
            "--output_format_json_quote_64bit_integers=0".to_string(),
        ];
        let cargs: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<_, _>>()
            .map_err(|_| StoreError::Connect("chDB path contains a NUL byte".into()))?;
        let handle = connect(lib, &cargs).ok_or_else(|| {
            StoreError::Connect(format!(
                "chdb_connect failed for {} (is another process using this directory?)",
                path.display()
            ))
        })?;
        let conn = Arc::new(ChdbConnection {
            lib,
            handle: Mutex::new(handle),
            background: Mutex::new(std::ptr::null_mut()),
            background_failed: AtomicBool::new(false),
            args: cargs,
            path,
            foreground: AtomicUsize::new(0),
            foreground_done_ms: AtomicU64::new(0),
            opened: Instant::now(),
        });
        *guard = Some(conn.clone());
        // SAFETY: registers a plain function with no captured state (see
        // `keep_exit_handler_first`: connecting registers libchdb destructors too).
        unsafe { on_exit(exit_before_chdb_teardown, std::ptr::null_mut()) };
        Ok(conn)
    }

    pub fn version(&self) -> String {
        // SAFETY: returns a static string.
        cstr_opt(unsafe { (self.lib.version)() }).unwrap_or_else(|| "unknown".into())
    }

    /// Takes the connection for one statement of `priority` (see [`ChdbConnection`]).
    fn acquire(
        &self,
        priority: Priority,
    ) -> Result<
        (
            Option<ForegroundClaim<'_>>,
            MutexGuard<'_, *mut *mut c_void>,
        ),
        StoreError,
    > {
        if priority == Priority::Foreground {
            self.foreground.fetch_add(1, Ordering::AcqRel);
            let claim = ForegroundClaim(self);
            let guard = self.handle.lock().map_err(poisoned)?;
            return Ok((Some(claim), guard));
        }
        let started = Instant::now();
        loop {
            let idle = self.foreground.load(Ordering::Acquire) == 0
                && self.opened.elapsed().as_millis() as u64
                    >= self.foreground_done_ms.load(Ordering::Acquire)
                        + BACKGROUND_GRACE.as_millis() as u64;
            if idle || started.elapsed() >= BACKGROUND_MAX_WAIT {
                let guard = self.background_handle()?;
                // A reader may have queued while this one waited for the lock.
                if self.foreground.load(Ordering::Acquire) == 0
                    || started.elapsed() >= BACKGROUND_MAX_WAIT
                {
                    return Ok((None, guard));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The background connection, opened on first use with half the threads (at least one)
    /// a query may use and at the lowest CPU priority ([`BACKGROUND_SETTINGS`]), so a
    /// compactor statement leaves the cores to the readers. Should it fail to open, background
    /// statements share the readers' connection (as before it existed), and it is not tried
    /// again.
    fn background_handle(&self) -> Result<MutexGuard<'_, *mut *mut c_void>, StoreError> {
        let mut guard = self.background.lock().map_err(poisoned)?;
        if guard.is_null() && !self.background_failed.load(Ordering::Acquire) {
            match connect(self.lib, &self.args) {
                Some(h) => {
                    let threads =
                        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
                    let settings = format!("max_threads = {threads}, {BACKGROUND_SETTINGS}");
                    // SAFETY: `h` is a live connection, used by this thread only (its mutex
                    // is held).
                    if let Err(e) =
                        unsafe { self.run(h, &format!("SET {settings}"), "TabSeparated") }
                    {
                        tracing::warn!(error = %e, %settings, "chDB background connection: cannot apply its settings");
                    }
                    *guard = h;
                    // SAFETY: as in `open`: connecting registers libchdb destructors.
                    unsafe { on_exit(exit_before_chdb_teardown, std::ptr::null_mut()) };
                }
                None => {
                    tracing::warn!(
                        path = %self.path.display(),
                        "chDB: a second connection did not open; background statements share the readers' one"
                    );
                    self.background_failed.store(true, Ordering::Release);
                }
            }
        }
        if guard.is_null() {
            drop(guard);
            return self.handle.lock().map_err(poisoned);
        }
        Ok(guard)
    }

    /// Runs one statement and returns its output in `format`.
    pub fn query(
        &self,
        sql: &str,
        format: &str,
        priority: Priority,
    ) -> Result<Vec<u8>, StoreError> {
        renice_merge_threads();
        let asked = Instant::now();
        let (_claim, guard) = self.acquire(priority)?;
        let started = Instant::now();
        // `RUST_LOG=vigil_store=debug`: what each statement waited for the connection (behind
        // other statements, or a background one deferring) and what it ran, apart.
        let _timing = StatementTiming {
            sql,
            priority,
            wait: started - asked,
            started,
        };
        // SAFETY: the handle is valid and ours while the guard is held.
        unsafe { self.run(*guard, sql, format) }
    }

    /// Runs one statement on connection `handle`.
    ///
    /// # Safety
    /// `handle` must be a live connection from `chdb_connect` that no other thread uses
    /// during the call.
    unsafe fn run(
        &self,
        handle: *mut *mut c_void,
        sql: &str,
        format: &str,
    ) -> Result<Vec<u8>, StoreError> {
        let lib = self.lib;
        // SAFETY: (the caller's) the handle is live and exclusive; lengths match the buffers.
        unsafe {
            let conn = *handle;
            let res = (lib.query)(
                conn,
                sql.as_ptr() as *const c_char,
                sql.len(),
                format.as_ptr() as *const c_char,
                format.len(),
            );
            if res.is_null() {
                return Err(StoreError::query(sql, "chDB returned no result"));
            }
            let out = match cstr_opt((lib.result_error)(res)) {
                Some(err) => Err(StoreError::query(sql, err.trim())),
                None => {
                    let buf = (lib.result_buffer)(res);
                    let len = (lib.result_length)(res);
                    if buf.is_null() || len == 0 {
                        Ok(Vec::new())
                    } else {
                        Ok(std::slice::from_raw_parts(buf as *const u8, len).to_vec())
                    }
                }
            };
            (lib.destroy_result)(res);
            keep_exit_handler_first();
            out
        }
    }

    /// Streams pre-encoded `format` data into `insert_sql` (`INSERT INTO t (cols)`).
    pub fn insert(
        &self,
        insert_sql: &str,
        format: &str,
        data: &[u8],
        priority: Priority,
    ) -> Result<(), StoreError> {
        renice_merge_threads();
        let (_claim, guard) = self.acquire(priority)?;
        let lib = self.lib;
        let fail = |msg: String| StoreError::Insert {
            table: insert_sql.to_string(),
            message: msg,
        };
        // SAFETY: as in `query`; the stream handle is destroyed on every path.
        unsafe {
            let conn = **guard;
            let stream = (lib.stream_insert)(
                conn,
                insert_sql.as_ptr() as *const c_char,
                insert_sql.len(),
                format.as_ptr() as *const c_char,
                format.len(),
            );
            if stream.is_null() {
                return Err(fail("chDB returned no insert stream".into()));
            }
            if let Some(err) = cstr_opt((lib.stream_error)(stream)) {
                (lib.destroy_stream)(stream);
                return Err(fail(err));
            }
            // Append in chunks so chDB can apply back-pressure on huge batches.
            for chunk in data.chunks(4 << 20) {
                if (lib.stream_append)(stream, chunk.as_ptr() as *const c_void, chunk.len()) != 0 {
                    let err = cstr_opt((lib.stream_error)(stream))
                        .unwrap_or_else(|| "append failed".into());
                    (lib.destroy_stream)(stream);
                    return Err(fail(err));
                }
            }
            let res = (lib.stream_done)(stream);
            let out = if res.is_null() {
                Err(fail("chDB returned no result for the insert".into()))
            } else {
                let e = cstr_opt((lib.result_error)(res));
                (lib.destroy_result)(res);
                match e {
                    Some(err) => Err(fail(err)),
                    None => Ok(()),
                }
            };
            (lib.destroy_stream)(stream);
            keep_exit_handler_first();
            out
        }
    }
}
