//! `ember-fuzz`: runs the fuzz targets (see the crate docs; `cargo xtask fuzz` drives it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ember_fuzz::alloc::LimitAlloc;
use ember_fuzz::runner::{self, Budget, Options};
use ember_fuzz::targets::{self, Target, TARGETS};

/// Any single allocation over 1 GiB, or one taking the live total over 2 GiB, is refused,
/// recorded and reported as a failure.
#[global_allocator]
static ALLOC: LimitAlloc = LimitAlloc::new(1 << 30).with_total_limit(2 << 30);

const USAGE: &str = "usage: ember-fuzz [--target NAME]... [--minutes N | --seconds N | --iters N] [--seed S] \
[--crash-dir DIR] [--hang-secs N] [--list]";

struct Args {
    targets: Vec<&'static Target>,
    budget: Budget,
    seed: u64,
    crash_dir: PathBuf,
    hang_after: Duration,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        targets: Vec::new(),
        budget: Budget::Inputs(5000),
        seed: 1,
        crash_dir: ember_fuzz::crate_dir().join("crashes"),
        hang_after: Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--list" {
            for t in TARGETS {
                println!("{:<16} {}", t.name, t.about);
            }
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag}: `{v}` is not a number"));
        match flag.as_str() {
            "--target" => args.targets.push(
                targets::find(&value).ok_or_else(|| format!("unknown target `{value}` (see ember-fuzz --list)"))?,
            ),
            "--minutes" => args.budget = Budget::Time(Duration::from_secs_f64(number(&value)? * 60.0)),
            "--seconds" => args.budget = Budget::Time(Duration::from_secs_f64(number(&value)?)),
            "--iters" => args.budget = Budget::Inputs(number(&value)? as u64),
            "--seed" => args.seed = value.parse().map_err(|_| format!("--seed: `{value}` is not an integer"))?,
            "--crash-dir" => args.crash_dir = PathBuf::from(value),
            "--hang-secs" => args.hang_after = Duration::from_secs_f64(number(&value)?),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if args.targets.is_empty() {
        args.targets = TARGETS.iter().collect();
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ember-fuzz: {msg}");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    for target in &args.targets {
        let root = ember_fuzz::crate_dir();
        let options = Options {
            seed: args.seed,
            budget: args.budget,
            corpus: root.join("corpus").join(target.name),
            regressions: vec![root.join("regressions").join(target.name)],
            crash_dir: args.crash_dir.clone(),
            hang_after: args.hang_after,
        };
        let name = target.name;
        let result = runner::run(target, &options, Duration::from_secs(10), &mut |r| {
            eprintln!("ember-fuzz: {name}: {} inputs, {:.0}/s, {} failures", r.inputs, r.rate(), r.failures.len());
        });
        let report = match result {
            Ok(report) => report,
            Err(err) => {
                eprintln!("ember-fuzz: {name}: error: {err}");
                failed = true;
                continue;
            }
        };
        println!(
            "ember-fuzz: {name}: {} inputs ({} seeds, {} regressions, {} accepted) in {:.1} s, {:.0} inputs/s, \
peak {:.1} MiB, {} failures",
            report.inputs,
            report.seeds,
            report.regressions,
            report.accepted,
            report.elapsed.as_secs_f64(),
            report.rate(),
            report.peak_bytes as f64 / (1 << 20) as f64,
            report.failures.len()
        );
        for f in &report.failures {
            println!("ember-fuzz: {name}: FAILURE: {} (input saved as {})", f.what, f.input.display());
        }
        failed |= !report.failures.is_empty();
    }
    targets::remove_scratch();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
