//! PyTorch checkpoints built to hurt: each is refused with an error naming the file, without a
//! stack overflow, an exhausted memory or a size that wraps around. The pickles are written here
//! opcode by opcode (protocol 2), so every test shows exactly what the file holds.

use std::path::Path;

use ember_io::pickle::{unpickle, Value, MAX_DEPTH};
use ember_io::{read_pytorch, Error};

/// A pickle opcode stream under construction.
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn new() -> Self {
        Self(vec![0x80, 0x02])
    }
    fn op(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn str(self, s: &str) -> Self {
        let len = (s.len() as u32).to_le_bytes();
        self.op(b"X").op(&len).op(s.as_bytes())
    }
    /// LONG1 with 8 bytes: any u64.
    fn int(self, v: u64) -> Self {
        self.op(&[0x8a, 8]).op(&v.to_le_bytes())
    }
    fn global(self, module: &str, name: &str) -> Self {
        self.op(b"c").op(module.as_bytes()).op(b"\n").op(name.as_bytes()).op(b"\n")
    }
    /// `_rebuild_tensor_v2(FloatStorage '0' of `numel`, 0, shape, stride, False, OrderedDict())`.
    fn tensor(self, numel: u64, shape: &[u64], stride: &[u64]) -> Self {
        let mut p = self.global("torch._utils", "_rebuild_tensor_v2").op(b"(");
        p = p.op(b"(").str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(numel).op(b"tQ");
        p = p.int(0).op(b"(");
        for &d in shape {
            p = p.int(d);
        }
        p = p.op(b"t(");
        for &s in stride {
            p = p.int(s);
        }
        p.op(b"t\x89").global("collections", "OrderedDict").op(b")R").op(b"tR")
    }
    fn stop(self) -> Vec<u8> {
        let mut bytes = self.0;
        bytes.push(b'.');
        bytes
    }
}

/// A legacy-layout checkpoint (five pickles, then the storages) holding `object` and one float
/// storage `'0'` of `floats`.
fn legacy_file(object: &[u8], floats: &[f32]) -> Vec<u8> {
    let mut file = Pickle::new().op(&[0x8a, 10]).op(&0x1950_a86a_20f9_469c_fc6cu128.to_le_bytes()[..10]).stop();
    file.extend(Pickle::new().op(b"M\xe9\x03").stop()); // protocol version 1001
    file.extend(Pickle::new().op(b"}").stop()); // system info
    file.extend_from_slice(object);
    file.extend(Pickle::new().op(b"(").str("0").op(b"l").stop()); // storage keys
    file.extend_from_slice(&(floats.len() as u64).to_le_bytes());
    for f in floats {
        file.extend_from_slice(&f.to_le_bytes());
    }
    file
}

/// `{"w": tensor}` as a checkpoint object.
fn state_dict_with(numel: u64, shape: &[u64], stride: &[u64]) -> Vec<u8> {
    Pickle::new().op(b"}").str("w").tensor(numel, shape, stride).op(b"s").stop()
}

fn read(bytes: &[u8]) -> Result<Vec<(String, candle_core::Tensor)>, Error> {
    read_pytorch(Path::new("hostile.pth"), bytes)
}

#[test]
fn the_builders_make_a_checkpoint_that_loads() {
    let file = legacy_file(&state_dict_with(6, &[2, 3], &[3, 1]), &[1., 2., 3., 4., 5., 6.]);
    let tensors = read(&file).unwrap();
    assert_eq!(tensors[0].0, "w");
    assert_eq!(tensors[0].1.to_vec2::<f32>().unwrap(), vec![vec![1., 2., 3.], vec![4., 5., 6.]]);
}

#[test]
fn a_million_nested_tuples_are_refused_without_overflowing_the_stack() {
    // `()` wrapped in a one-tuple a million times: dropping or walking such a value recursively
    // overflows the stack.
    let mut p = Pickle::new().op(b")");
    p.0.extend(std::iter::repeat_n(0x85, 1_000_000));
    let err = unpickle(&p.stop()).unwrap_err();
    assert!(format!("{err:?}").contains(&format!("nested more than {MAX_DEPTH} levels")), "{err:?}");

    // The same depth reached through lists appended into lists.
    let mut p = Pickle::new();
    p.0.extend(std::iter::repeat_n(b']', 100_000));
    p.0.extend(std::iter::repeat_n(b'a', 99_999));
    assert!(unpickle(&p.stop()).is_err());

    // Nesting up to the limit is fine.
    let mut p = Pickle::new().op(b")");
    p.0.extend(std::iter::repeat_n(0x85, MAX_DEPTH - 1));
    assert!(unpickle(&p.stop()).is_ok());
}

#[test]
fn memo_references_are_shared_not_copied() {
    // "Billion laughs": list i+1 holds list i twice, 64 levels: 2^64 leaves if copied.
    let mut p = Pickle::new().op(b"]q\x00");
    for i in 0..64u8 {
        p = p.op(&[b'(', b'h', i, b'h', i, b'l', b'q', i + 1]);
    }
    let (value, _) = unpickle(&p.stop()).unwrap();
    let Value::List(top) = value else { panic!("not a list") };
    assert_eq!(top.len(), 2);
}

#[test]
fn a_state_dict_that_unfolds_exponentially_is_refused() {
    // Dict i+1 = {"a": dict i, "b": dict i}, 60 levels, with a tensor at the bottom: walking it
    // for tensors would visit 2^60 entries.
    let mut p = Pickle::new().op(b"}").str("w").tensor(1, &[1], &[1]).op(b"sq\x00");
    for i in 0..60u8 {
        p = p.op(b"(").str("a").op(&[b'h', i]).str("b").op(&[b'h', i]).op(b"d").op(&[b'q', i + 1]);
    }
    let err = read(&legacy_file(&p.stop(), &[1.0])).unwrap_err();
    assert!(err.to_string().contains("hostile.pth") && err.to_string().contains("refusing to walk"), "{err}");
}

#[test]
fn shapes_whose_element_count_overflows_are_refused() {
    let file = legacy_file(&state_dict_with(1, &[1 << 32, 1 << 32], &[0, 0]), &[1.0]);
    let err = read(&file).unwrap_err().to_string();
    assert!(err.contains("hostile.pth") && err.contains("`w`") && err.contains("more elements than fit"), "{err}");
    let file = legacy_file(&state_dict_with(1, &[1 << 31, 1 << 31, 4], &[0, 0, 0]), &[1.0]);
    assert!(read(&file).unwrap_err().to_string().contains("more"));
}

#[test]
fn stride_zero_views_cannot_expand_a_tiny_storage_into_gigabytes() {
    // One float viewed as 16384 x 16384 (1 GiB once materialised).
    let file = legacy_file(&state_dict_with(1, &[16384, 16384], &[0, 0]), &[1.0]);
    let err = read(&file).unwrap_err().to_string();
    assert!(err.contains("`w`") && err.contains("materialise"), "{err}");
    // A modest broadcast still loads.
    let file = legacy_file(&state_dict_with(1, &[4, 3], &[0, 0]), &[2.5]);
    assert_eq!(read(&file).unwrap()[0].1.to_vec2::<f32>().unwrap(), vec![vec![2.5f32; 3]; 4]);
}

#[test]
fn storage_sizes_that_overflow_or_overrun_the_file_are_refused() {
    let mut file = legacy_file(&state_dict_with(1, &[1], &[1]), &[]);
    let count_at = file.len() - 8;
    file[count_at..].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = read(&file).unwrap_err().to_string();
    assert!(err.contains("hostile.pth") && err.contains("file ends inside"), "{err}");
}
