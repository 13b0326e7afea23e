//! Groups of processes (here: threads, each with its own loopback TCP connections, exactly as
//! processes would have): torchrun's variables checked, the TCP collective giving the
//! in-process group's results, and failures ending every member with an error, never a hang.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use ember_train::rendezvous::{connect, MasterListener, MAX_WORLD_SIZE};
use ember_train::{run_replicated, Collective, Error, RendezvousConfig, RendezvousOptions, Result, TcpCollective};

fn quick() -> RendezvousOptions {
    RendezvousOptions { join_timeout: Duration::from_secs(20), timeout: Duration::from_secs(20) }
}

/// The members of a new loopback group of `world` ranks (rank 0 on port 0: whatever is free).
fn tcp_group(world: usize, options: RendezvousOptions) -> Vec<TcpCollective> {
    let master = MasterListener::bind("127.0.0.1", 0, world).unwrap();
    let port = master.port();
    let peers: Vec<_> =
        (1..world).map(|rank| std::thread::spawn(move || connect("127.0.0.1", port, rank, world, &options))).collect();
    let mut members = vec![TcpCollective::new(master.accept(&options).unwrap())];
    members.extend(peers.into_iter().map(|p| TcpCollective::new(p.join().unwrap().unwrap())));
    members
}

/// Runs `f` on every member of a loopback group of `world`, each on its own thread, and returns
/// the results in rank order; fails the test instead of hanging.
fn run_tcp<T, F>(world: usize, options: RendezvousOptions, f: F) -> Vec<Result<T>>
where
    T: Send + 'static,
    F: Fn(TcpCollective) -> Result<T> + Send + Sync + Clone + 'static,
{
    let (tx, rx) = mpsc::channel();
    for member in tcp_group(world, options) {
        let (tx, f) = (tx.clone(), f.clone());
        std::thread::spawn(move || {
            let rank = member.rank();
            let _ = tx.send((rank, f(member)));
        });
    }
    drop(tx);
    let mut results: Vec<(usize, Result<T>)> =
        (0..world).map(|_| rx.recv_timeout(Duration::from_secs(60)).expect("a member hung")).collect();
    results.sort_by_key(|(rank, _)| *rank);
    results.into_iter().map(|(_, r)| r).collect()
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned()
}

const GOOD: [(&str, &str); 5] =
    [("WORLD_SIZE", "4"), ("RANK", "3"), ("LOCAL_RANK", "1"), ("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29500")];

/// `GOOD` with `name` set to `value` (or removed).
fn with(name: &str, value: Option<&str>) -> Vec<(&'static str, String)> {
    GOOD.iter()
        .filter_map(
            |(k, v)| {
                if *k == name {
                    value.map(|value| (*k, value.to_string()))
                } else {
                    Some((*k, v.to_string()))
                }
            },
        )
        .collect()
}

fn parse(pairs: &[(&'static str, String)]) -> Result<RendezvousConfig> {
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    RendezvousConfig::from_lookup(env(&pairs))
}

#[test]
fn torchrun_variables_are_read_and_every_bad_value_is_named() {
    let config = RendezvousConfig::from_lookup(env(&GOOD)).unwrap();
    assert_eq!(
        config,
        RendezvousConfig { master_addr: "10.0.0.1".into(), master_port: 29500, world_size: 4, rank: 3, local_rank: 1 }
    );
    // Without LOCAL_RANK (one machine), the GPU is the rank.
    assert_eq!(parse(&with("LOCAL_RANK", None)).unwrap().local_rank, 3);

    for variable in ["WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"] {
        match parse(&with(variable, None)) {
            Err(e @ Error::MissingVariable { variable: v, .. }) => {
                assert_eq!(v, variable);
                assert!(e.to_string().contains(variable), "{e}");
            }
            other => panic!("{variable} unset: {other:?}"),
        }
    }
    let bad = [
        ("WORLD_SIZE", "two", "not a whole number"),
        ("WORLD_SIZE", "-1", "not a whole number"),
        ("WORLD_SIZE", "0", "at least one process"),
        ("WORLD_SIZE", "1000000", "at most 1024"),
        ("RANK", "4", "must be below WORLD_SIZE (4)"),
        ("RANK", "", "not a whole number"),
        ("LOCAL_RANK", "x", "not a whole number"),
        ("LOCAL_RANK", "9", "must be below WORLD_SIZE"),
        ("MASTER_ADDR", "", "not a host name"),
        ("MASTER_ADDR", "a b", "not a host name"),
        ("MASTER_PORT", "0", "port 0"),
        ("MASTER_PORT", "65536", "not a port number"),
        ("MASTER_PORT", "http", "not a port number"),
    ];
    for (variable, value, problem) in bad {
        match parse(&with(variable, Some(value))) {
            Err(e @ Error::BadVariable { .. }) => {
                let Error::BadVariable { variable: v, value: got, .. } = &e else { unreachable!() };
                assert_eq!((*v, got.as_str()), (variable, value));
                let message = e.to_string();
                assert!(message.contains(&format!("{variable}={value:?}")) && message.contains(problem), "{message}");
            }
            other => panic!("{variable}={value}: {other:?}"),
        }
    }
    assert_eq!(MAX_WORLD_SIZE, 1024);
    // Started by torchrun: its agent holds MASTER_PORT.
    let mut torchrun = with("RANK", Some("0"));
    torchrun.push(("TORCHELASTIC_USE_AGENT_STORE", "True".into()));
    let error = parse(&torchrun).unwrap_err();
    assert!(error.to_string().contains("started by torchrun"), "{error}");
}

#[test]
fn a_group_joined_through_the_variables_exchanges_bytes() {
    // A free port for rank 0 (the variables cannot say "any port").
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let handles: Vec<_> = (0..3)
        .map(|rank| {
            let vars = [
                ("WORLD_SIZE", "3".to_string()),
                ("RANK", rank.to_string()),
                ("MASTER_ADDR", "127.0.0.1".to_string()),
                ("MASTER_PORT", port.clone()),
            ];
            std::thread::spawn(move || {
                let config = parse(&vars)?;
                let mut store = config.join(&quick())?;
                let bytes = store.broadcast_bytes(format!("from rank {rank}").as_bytes())?;
                store.barrier()?;
                Ok::<_, Error>((store.rank(), store.world_size(), bytes))
            })
        })
        .collect();
    for (rank, handle) in handles.into_iter().enumerate() {
        let (r, world, bytes) = handle.join().unwrap().unwrap();
        assert_eq!((r, world, bytes.as_slice()), (rank, 3, &b"from rank 0"[..]));
    }
}

/// What every rank computes in the comparison with the in-process group: sums (in an order
/// that shows when additions are reordered), means and broadcasts of several dtypes.
fn exchange(member: &mut dyn Collective) -> Result<Vec<Vec<f64>>> {
    let rank = member.rank();
    let big = [1e16, 1.0, -1e16][rank % 3] + rank as f64;
    let cpu = &Device::Cpu;
    let tensors = vec![
        Tensor::new(&[[big, 0.5 * rank as f64], [1.0 / (rank as f64 + 3.0), -2.0]], cpu)?,
        Tensor::new(&[0.1f32 * rank as f32, 1e8, 3.0], cpu)?,
        Tensor::new(&[rank as u32 + 1], cpu)?,
        Tensor::new(&[0.3f32 + rank as f32 * 0.01, 7.0], cpu)?.to_dtype(DType::BF16)?,
        // A view (not contiguous) moves like any tensor.
        Tensor::arange(0f64, 6.0, cpu)?.affine(1.0, rank as f64)?.reshape((2, 3))?.t()?,
    ];
    let as_f64 = |ts: Vec<Tensor>| -> Result<Vec<Vec<f64>>> {
        ts.iter().map(|t| Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)).collect()
    };
    let mut out = as_f64(member.all_reduce_sum(&tensors)?)?;
    let floats: Vec<Tensor> = tensors.iter().filter(|t| t.dtype().is_float()).cloned().collect();
    out.extend(as_f64(member.all_reduce_mean(&floats)?)?);
    out.extend(as_f64(member.broadcast(&tensors)?)?);
    member.barrier()?;
    // An empty call and a zero-sized tensor are calls like any other.
    out.extend(as_f64(member.all_reduce_sum(&[Tensor::zeros((0, 3), DType::F32, cpu)?])?)?);
    assert!(member.all_reduce_sum(&[])?.is_empty());
    Ok(out)
}

#[test]
fn the_tcp_group_sums_and_broadcasts_as_the_in_process_group_does() {
    for world in [1, 2, 3] {
        let in_process = run_replicated(world, |mut member| exchange(&mut member)).unwrap();
        let over_tcp: Vec<Vec<Vec<f64>>> =
            run_tcp(world, quick(), |mut member| exchange(&mut member)).into_iter().map(|r| r.unwrap()).collect();
        for (rank, (a, b)) in in_process.iter().zip(&over_tcp).enumerate() {
            let bits = |v: &Vec<Vec<f64>>| {
                v.iter().map(|t| t.iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect::<Vec<_>>()
            };
            assert_eq!(bits(a), bits(b), "world {world}, rank {rank}: {a:?} vs {b:?}");
            assert_eq!(bits(b), bits(&over_tcp[0]), "world {world}: rank {rank} got other results than rank 0");
        }
    }
}

#[test]
fn ranks_that_disagree_fail_instead_of_waiting() {
    // Other shapes.
    let results = run_tcp(2, quick(), |mut member| {
        let t = Tensor::zeros(member.rank() + 1, DType::F64, &Device::Cpu)?;
        member.all_reduce_sum(&[t]).map(|_| ())
    });
    assert!(
        matches!(&results[0], Err(Error::Collective(m)) if m.contains("tensor 0 is F64 [1] on rank 0 but F64 [2] on rank 1")),
        "{results:?}"
    );
    assert!(matches!(&results[1], Err(Error::ReplicaFailed { rank: 0, .. })), "{results:?}");
    // Other calls.
    let results = run_tcp(3, quick(), |mut member| {
        if member.rank() == 2 {
            member.barrier()
        } else {
            member.broadcast(&[Tensor::new(&[1f32], &Device::Cpu)?]).map(|_| ())
        }
    });
    assert!(
        matches!(&results[0], Err(Error::Collective(m)) if m.contains("rank 2 called Barrier while rank 0 called Broadcast")),
        "{results:?}"
    );
    assert!(results[1..].iter().all(|r| matches!(r, Err(Error::ReplicaFailed { .. }))), "{results:?}");
}

#[test]
fn an_abort_or_a_departure_ends_every_member_with_an_error() {
    for leaving in [0, 1, 2] {
        // One rank aborts: the others fail naming it and its reason, in their pending call and
        // later. (It keeps its connections open until the test ends, so that the others read
        // its abort rather than its departure.)
        let results = run_tcp(3, quick(), move |mut member| {
            if member.rank() == leaving {
                member.abort("out of memory");
                return Ok(Some(member));
            }
            let first = member.barrier();
            let second = member.all_reduce_sum(&[Tensor::new(&[1f32], &Device::Cpu)?]).map(|_| ());
            assert!(matches!(second, Err(Error::ReplicaFailed { .. })), "{second:?}");
            first.map(|()| None)
        });
        for (rank, result) in results.iter().enumerate() {
            if rank == leaving {
                assert!(result.is_ok());
            } else {
                match result {
                    Err(Error::ReplicaFailed { rank: r, reason }) => {
                        assert_eq!((*r, reason.as_str()), (leaving, "out of memory"), "rank {rank}")
                    }
                    other => panic!("rank {rank} after rank {leaving} aborted: {other:?}"),
                }
            }
        }
        // One rank's process ends (its connections close) without a word.
        let results = run_tcp(3, quick(), move |mut member| {
            if member.rank() == leaving {
                drop(member);
                return Ok(());
            }
            member.all_reduce_sum(&[Tensor::new(&[1f32], &Device::Cpu)?]).map(|_| ())
        });
        for (rank, result) in results.iter().enumerate() {
            if rank != leaving {
                assert!(
                    matches!(result, Err(Error::ReplicaFailed { .. })),
                    "rank {rank} after rank {leaving} left: {result:?}"
                );
            }
        }
    }
}

#[test]
fn a_silent_peer_is_a_timeout_not_a_hang() {
    let options = RendezvousOptions { join_timeout: Duration::from_secs(20), timeout: Duration::from_millis(300) };
    let results = run_tcp(2, options, |mut member| {
        if member.rank() == 1 {
            // Alive but never calling: rank 0 must give up on its own.
            std::thread::sleep(Duration::from_secs(2));
            return Ok(());
        }
        member.barrier()
    });
    assert!(matches!(&results[0], Err(Error::Network { detail, .. }) if detail.contains("timed out")), "{results:?}");
}

#[test]
fn joining_fails_clearly_without_a_master_or_with_strangers() {
    let short = RendezvousOptions { join_timeout: Duration::from_millis(500), timeout: Duration::from_secs(5) };
    // Nobody listens on a port just freed.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let error = connect("127.0.0.1", port, 1, 2, &short).unwrap_err();
    assert!(matches!(&error, Error::Network { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&format!("127.0.0.1:{port}")) && error.to_string().contains("MASTER_ADDR"),
        "{error}"
    );

    // Rank 0 alone: the missing ranks are named.
    let error = MasterListener::bind("127.0.0.1", 0, 3).unwrap().accept(&short).unwrap_err();
    assert!(error.to_string().contains("ranks 1, 2 did not join"), "{error}");

    // A stranger that connects and sends garbage (or a huge length) is ignored; a member of
    // another group (wrong world size) fails the rendezvous on both sides.
    let master = MasterListener::bind("127.0.0.1", 0, 2).unwrap();
    let port = master.port();
    let stranger = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(&[0xff; 64]).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        connect("127.0.0.1", port, 1, 3, &quick()).map(|_| ())
    });
    let error = master.accept(&quick()).unwrap_err();
    assert!(error.to_string().contains("WORLD_SIZE is 3, rank 0 says 2"), "{error}");
    let wrong = stranger.join().unwrap().unwrap_err();
    assert!(wrong.to_string().contains("WORLD_SIZE is 3, rank 0 says 2"), "{wrong}");
}

#[test]
fn a_hostile_peer_cannot_make_rank_zero_allocate_or_hang() {
    // A peer that joins properly, then claims a 16 EiB message: rank 0 refuses it unread.
    let master = MasterListener::bind("127.0.0.1", 0, 2).unwrap();
    let port = master.port();
    let hostile = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut hello = b"ember-dp\x00\x00\x00\x01".to_vec();
        hello.extend_from_slice(&1u32.to_le_bytes());
        hello.extend_from_slice(&2u32.to_le_bytes());
        s.write_all(&hello).unwrap();
        let mut welcome = [0u8; 9];
        s.read_exact(&mut welcome).unwrap();
        let mut frame = vec![1u8];
        frame.extend_from_slice(&u64::MAX.to_le_bytes());
        s.write_all(&frame).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    });
    let mut root = TcpCollective::new(master.accept(&quick()).unwrap());
    let error = root.barrier().unwrap_err();
    assert!(
        matches!(&error, Error::ReplicaFailed { rank: 1, reason } if reason.contains("more than the limit")),
        "{error:?}"
    );
    hostile.join().unwrap();
}
