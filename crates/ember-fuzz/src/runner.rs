//! The fuzzing loop: seeds, regressions, mutated inputs, crash files and the hang watchdog.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::mutate::Mutator;
use crate::targets::Target;

/// Exit status of a process whose watchdog found a hang.
pub const HANG_EXIT: i32 = 3;

/// How long a run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// This many mutated inputs (after the seeds and regressions).
    Inputs(u64),
    /// Mutated inputs until this much time has passed.
    Time(Duration),
}

/// What to fuzz and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The RNG seed: one seed replays a run.
    pub seed: u64,
    /// When to stop.
    pub budget: Budget,
    /// The seed inputs (every file in it).
    pub corpus: PathBuf,
    /// Inputs that once failed (every file in each folder that exists), run once each first.
    pub regressions: Vec<PathBuf>,
    /// Where each input is written before it runs, and where failing inputs stay.
    pub crash_dir: PathBuf,
    /// An input running longer than this is a hang: reported, then the process exits
    /// with [`HANG_EXIT`].
    pub hang_after: Duration,
}

/// One failing input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Where the input is saved.
    pub input: PathBuf,
    /// What went wrong (a panic's message and location, or the refused allocation).
    pub what: String,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Inputs run: seeds, regressions and mutations.
    pub inputs: u64,
    /// Of those, inputs the parser accepted.
    pub accepted: u64,
    /// Seed inputs found.
    pub seeds: usize,
    /// Regression inputs run.
    pub regressions: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// The most bytes live at once (0 unless [`crate::alloc::LimitAlloc`] is installed).
    pub peak_bytes: usize,
    /// Failing inputs (each saved).
    pub failures: Vec<Failure>,
}

impl Report {
    /// Inputs per second.
    pub fn rate(&self) -> f64 {
        self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The most failures kept per run (the first ones; the rest are only counted as inputs).
const MAX_FAILURES: usize = 20;

/// Errors of the runner itself (not of the target).
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

/// Reads every file of `dir` (sorted by name); a missing folder is empty.
pub fn read_inputs(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, RunError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut paths: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && !is_hidden(p)).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).map_err(|e| RunError(format!("{}: {e}", p.display())))?;
            Ok((p, bytes))
        })
        .collect()
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// FNV-1a, 64 bits: names saved inputs by content.
pub fn content_hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The panic message of the last panic on this process (set by the hook [`run`] installs).
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn install_quiet_panic_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = Some(format!("panic: {msg}{at}"));
            }
        }));
    });
}

/// What the watchdog watches: when the current input started (ms since the run began, 0: none).
struct Watch {
    origin: Instant,
    started_ms: AtomicU64,
    input: Mutex<PathBuf>,
    done: AtomicBool,
}

fn spawn_watchdog(watch: Arc<Watch>, target: &'static str, hang_after: Duration) {
    std::thread::spawn(move || {
        while !watch.done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            let started = watch.started_ms.load(Ordering::Relaxed);
            if started == 0 {
                continue;
            }
            let now = watch.origin.elapsed().as_millis() as u64;
            if now.saturating_sub(started) > hang_after.as_millis() as u64 {
                let input = watch.input.lock().map(|p| p.display().to_string()).unwrap_or_default();
                // The main thread is stuck inside the target, so this thread reports and ends the
                // process; the input is already on disk.
                eprintln!("ember-fuzz: {target}: HANG: an input ran for more than {hang_after:?}; saved as {input}");
                std::process::exit(HANG_EXIT);
            }
        }
    });
}

/// Runs `target` on its seeds, its regression inputs and mutations of the seeds until the
/// budget is spent. `progress` is called about every `every` with the report so far.
pub fn run(
    target: &'static Target,
    options: &Options,
    every: Duration,
    progress: &mut dyn FnMut(&Report),
) -> Result<Report, RunError> {
    install_quiet_panic_hook();
    std::fs::create_dir_all(&options.crash_dir)
        .map_err(|e| RunError(format!("{}: {e}", options.crash_dir.display())))?;
    let seeds = read_inputs(&options.corpus)?;
    if seeds.is_empty() {
        return Err(RunError(format!("{}: no seed inputs for target `{}`", options.corpus.display(), target.name)));
    }
    let mut regressions = Vec::new();
    for dir in &options.regressions {
        regressions.extend(read_inputs(dir)?);
    }
    let max_len = seeds.iter().map(|(_, s)| s.len()).max().unwrap_or(0).saturating_mul(4).clamp(4096, 1 << 20);
    let watch = Arc::new(Watch {
        origin: Instant::now(),
        started_ms: AtomicU64::new(0),
        input: Mutex::new(PathBuf::new()),
        done: AtomicBool::new(false),
    });
    spawn_watchdog(Arc::clone(&watch), target.name, options.hang_after);

    let start = Instant::now();
    let mut report = Report { seeds: seeds.len(), regressions: regressions.len(), ..Report::default() };
    let _ = crate::alloc::take_peak();
    let one = |input: &[u8], report: &mut Report| -> Result<bool, RunError> {
        let path = options.crash_dir.join(format!("{}-{:016x}.bin", target.name, content_hash(input)));
        let existed = path.exists();
        if !existed {
            std::fs::write(&path, input).map_err(|e| RunError(format!("{}: {e}", path.display())))?;
        }
        if let Ok(mut p) = watch.input.lock() {
            p.clone_from(&path);
        }
        let _ = crate::alloc::take_refused();
        watch.started_ms.store((watch.origin.elapsed().as_millis() as u64).max(1), Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
        watch.started_ms.store(0, Ordering::Relaxed);
        let refused = crate::alloc::take_refused();
        report.inputs += 1;
        let what = match (&outcome, refused) {
            (Err(_), _) => Some(LAST_PANIC.lock().ok().and_then(|mut l| l.take()).unwrap_or_else(|| "panic".into())),
            (Ok(_), Some(size)) => {
                Some(format!("an allocation of {size} bytes was refused (over the single or total limit)"))
            }
            (Ok(_), None) => None,
        };
        match what {
            Some(what) => {
                if report.failures.len() < MAX_FAILURES && !report.failures.iter().any(|f| f.input == path) {
                    report.failures.push(Failure { input: path, what });
                }
                Ok(false)
            }
            None => {
                if !existed {
                    let _ = std::fs::remove_file(&path);
                }
                let accepted = matches!(outcome, Ok(true));
                report.accepted += u64::from(accepted);
                Ok(accepted)
            }
        }
    };

    for (_, input) in seeds.iter().chain(&regressions) {
        one(input, &mut report)?;
    }
    let mut mutator = Mutator::new(options.seed, max_len);
    // Accepted mutants: deeper starting points than the seeds alone.
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut mutated = 0u64;
    let mut last_progress = Instant::now();
    loop {
        match options.budget {
            Budget::Inputs(n) if mutated >= n => break,
            Budget::Time(t) if start.elapsed() >= t => break,
            _ => {}
        }
        let rng = mutator.rng();
        let base = if !pool.is_empty() && rng.random_bool(0.3) {
            pool[rng.random_range(0..pool.len())].clone()
        } else {
            seeds[rng.random_range(0..seeds.len())].1.clone()
        };
        let other_index = rng.random_range(0..seeds.len());
        let mut input = base;
        mutator.mutate(&mut input, &seeds[other_index].1);
        mutated += 1;
        if one(&input, &mut report)? {
            if pool.len() < 512 {
                pool.push(input);
            } else {
                let i = mutator.rng().random_range(0..pool.len());
                pool[i] = input;
            }
        }
        if last_progress.elapsed() >= every {
            last_progress = Instant::now();
            report.elapsed = start.elapsed();
            progress(&report);
        }
    }
    watch.done.store(true, Ordering::Relaxed);
    report.elapsed = start.elapsed();
    report.peak_bytes = crate::alloc::take_peak();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panics_on_bang(data: &[u8]) -> bool {
        assert!(!data.contains(&b'!'), "found a bang");
        true
    }

    static BANG: Target = Target { name: "bang", about: "test target", run: panics_on_bang, dict: &[] };

    #[test]
    fn runner_keeps_panicking_inputs_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("corpus");
        std::fs::create_dir_all(&corpus).unwrap();
        std::fs::write(corpus.join("seed"), b"hello world").unwrap();
        let options = Options {
            seed: 1,
            budget: Budget::Inputs(3000),
            corpus,
            regressions: vec![dir.path().join("missing")],
            crash_dir: dir.path().join("crashes"),
            hang_after: Duration::from_secs(10),
        };
        let report = run(&BANG, &options, Duration::from_secs(60), &mut |_| {}).unwrap();
        assert_eq!(report.inputs, 3001);
        assert!(!report.failures.is_empty(), "no mutation inserted a '!'");
        let saved = read_inputs(&options.crash_dir).unwrap();
        assert!(saved.len() >= report.failures.len());
        for (path, bytes) in &saved {
            assert!(bytes.contains(&b'!'), "{} was kept but does not fail", path.display());
        }
        let failure = &report.failures[0];
        assert!(failure.what.contains("found a bang"), "{}", failure.what);
        assert!(failure.input.file_name().unwrap().to_string_lossy().starts_with("bang-"));
    }
}
