//! A restricted pickle reader: enough of the protocol to read PyTorch checkpoints, and nothing
//! that can run code.
//!
//! Python's unpickler calls any global a pickle names. This one knows a short list of globals
//! (the dictionary class and PyTorch's tensor-rebuild functions and storage types) and builds
//! plain values for them; any other global is refused with an error before anything happens.
//!
//! Hostile streams cannot exhaust the stack or memory: containers nest at most [`MAX_DEPTH`]
//! levels (so building, dropping and walking a value never recurses deeper), and the memo shares
//! values by reference count instead of copying them, so a stream that refers to a memoised
//! value over and over ("billion laughs") costs one pointer per reference.

use std::collections::HashMap;
use std::rc::Rc;

/// The deepest nesting of tuples, lists and dicts a pickle may build. PyTorch checkpoints nest a
/// handful of levels (a dict of dicts of tensors, a tensor's size tuple).
pub const MAX_DEPTH: usize = 256;

/// A value built from a pickle. Containers and variable-sized leaves sit behind `Rc`, so cloning
/// a value (as the memo does) is O(1) and a value may be shared by many containers.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// An integer wider than 64 bits (little-endian two's complement bytes).
    BigInt(Rc<[u8]>),
    /// A string.
    Str(Rc<str>),
    /// A bytes object.
    Bytes(Rc<[u8]>),
    /// A tuple.
    Tuple(Rc<Vec<Value>>),
    /// A list.
    List(Rc<Vec<Value>>),
    /// A dict (or `OrderedDict`), in insertion order.
    Dict(Rc<Vec<(Value, Value)>>),
    /// One of the allowed globals, not yet called.
    Global(Global),
    /// A PyTorch storage reference (from a persistent id).
    Storage(Rc<StorageRef>),
    /// A tensor view into a storage.
    Tensor(Rc<TensorRef>),
}

/// The globals a checkpoint may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2` (and `_rebuild_tensor`).
    RebuildTensor,
    /// `torch._utils._rebuild_parameter`.
    RebuildParameter,
    /// A `torch.*Storage` type, with its element type.
    StorageType(StorageDtype),
}

/// Element types of PyTorch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDtype {
    /// float32.
    F32,
    /// float64.
    F64,
    /// float16.
    F16,
    /// bfloat16.
    BF16,
    /// int64.
    I64,
    /// int32.
    I32,
    /// int16.
    I16,
    /// uint8.
    U8,
    /// bool (one byte each).
    Bool,
}

impl StorageDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StorageDtype::F64 | StorageDtype::I64 => 8,
            StorageDtype::F32 | StorageDtype::I32 => 4,
            StorageDtype::F16 | StorageDtype::BF16 | StorageDtype::I16 => 2,
            StorageDtype::U8 | StorageDtype::Bool => 1,
        }
    }

    fn from_storage_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => StorageDtype::F32,
            "DoubleStorage" => StorageDtype::F64,
            "HalfStorage" => StorageDtype::F16,
            "BFloat16Storage" => StorageDtype::BF16,
            "LongStorage" => StorageDtype::I64,
            "IntStorage" => StorageDtype::I32,
            "ShortStorage" => StorageDtype::I16,
            "ByteStorage" => StorageDtype::U8,
            "BoolStorage" => StorageDtype::Bool,
            _ => return None,
        })
    }
}

/// A storage named by a persistent id: `('storage', type, key, location, numel, ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// Element type.
    pub dtype: StorageDtype,
    /// Key of the storage's bytes in the file.
    pub key: String,
    /// Number of elements.
    pub numel: usize,
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage viewed.
    pub storage: StorageRef,
    /// Offset in elements.
    pub offset: usize,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub stride: Vec<usize>,
}

/// Why unpickling stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickleError {
    /// A global outside the allowed list.
    Refused {
        /// Module.
        module: String,
        /// Name.
        name: String,
    },
    /// Malformed stream or unsupported construct at `offset`.
    Malformed {
        /// Byte offset.
        offset: usize,
        /// What is wrong.
        detail: String,
    },
}

fn resolve_global(module: &str, name: &str) -> Result<Global, PickleError> {
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => Ok(Global::RebuildTensor),
        ("torch._utils", "_rebuild_parameter") => Ok(Global::RebuildParameter),
        ("torch", storage) => match StorageDtype::from_storage_name(storage) {
            Some(d) => Ok(Global::StorageType(d)),
            None => Err(PickleError::Refused { module: module.into(), name: name.into() }),
        },
        _ => Err(PickleError::Refused { module: module.into(), name: name.into() }),
    }
}

/// Reads one pickle from `data`; returns the value and the number of bytes consumed.
pub fn unpickle(data: &[u8]) -> Result<(Value, usize), PickleError> {
    Machine { data, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() }.run()
}

/// A value on the machine's stack with its nesting depth (0 for leaves, 1 for an empty
/// container, one more than its deepest element otherwise).
struct Nested {
    value: Value,
    depth: usize,
}

enum Item {
    Value(Nested),
    Mark,
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    marks: Vec<usize>,
    memo: HashMap<u32, (Value, usize)>,
}

impl Machine<'_> {
    fn err<T>(&self, detail: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError::Malformed { offset: self.pos, detail: detail.into() })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => self.err(format!("stream ends inside an argument of {n} bytes")),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                let s = String::from_utf8_lossy(&rest[..n]).into_owned();
                self.pos += n + 1;
                Ok(s)
            }
            None => self.err("unterminated text argument"),
        }
    }

    fn string(&mut self, n: usize) -> Result<Value, PickleError> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(Value::Str(Rc::from(s))),
            Err(_) => self.err("string is not UTF-8"),
        }
    }

    /// Pushes a leaf (a value that holds no other value).
    fn push(&mut self, value: Value) {
        self.stack.push(Item::Value(Nested { value, depth: 0 }));
    }

    /// Pushes a container built from elements whose deepest has depth `inner`.
    fn push_container(&mut self, value: Value, inner: usize) -> Result<(), PickleError> {
        let depth = self.container_depth(inner)?;
        self.stack.push(Item::Value(Nested { value, depth }));
        Ok(())
    }

    fn container_depth(&self, inner: usize) -> Result<usize, PickleError> {
        let depth = inner + 1;
        if depth > MAX_DEPTH {
            return self.err(format!("containers nested more than {MAX_DEPTH} levels deep"));
        }
        Ok(depth)
    }

    fn pop_nested(&mut self) -> Result<Nested, PickleError> {
        match self.stack.pop() {
            Some(Item::Value(v)) => Ok(v),
            Some(Item::Mark) => self.err("unexpected mark"),
            None => self.err("stack underflow"),
        }
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        Ok(self.pop_nested()?.value)
    }

    fn top(&mut self) -> Result<&mut Nested, PickleError> {
        let pos = self.pos;
        match self.stack.last_mut() {
            Some(Item::Value(v)) => Ok(v),
            _ => Err(PickleError::Malformed { offset: pos, detail: "no value on the stack".into() }),
        }
    }

    /// The values above the last mark, and the depth of the deepest of them.
    fn pop_mark(&mut self) -> Result<(Vec<Value>, usize), PickleError> {
        let Some(start) = self.marks.pop() else { return self.err("no mark") };
        if start > self.stack.len() {
            return self.err("mark beyond stack");
        }
        let items: Vec<Item> = self.stack.drain(start..).collect();
        let mut out = Vec::with_capacity(items.len());
        let mut deepest = 0;
        for (i, it) in items.into_iter().enumerate() {
            match it {
                Item::Value(v) => {
                    deepest = deepest.max(v.depth);
                    out.push(v.value);
                }
                Item::Mark if i == 0 => {}
                Item::Mark => return self.err("nested mark"),
            }
        }
        Ok((out, deepest))
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some((value, depth)) => {
                // A shared reference, not a copy (see the module docs).
                let item = Item::Value(Nested { value: value.clone(), depth: *depth });
                self.stack.push(item);
                Ok(())
            }
            None => self.err(format!("memo key {key} not set")),
        }
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let top = self.top()?;
        let entry = (top.value.clone(), top.depth);
        self.memo.insert(key, entry);
        Ok(())
    }

    /// Adds `items` (key, value, key, value, ...) of depth up to `inner` to the dict on top.
    fn set_items(&mut self, items: Vec<Value>, inner: usize) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err("odd number of dict items");
        }
        let depth = self.container_depth(inner)?;
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        self.extend_top(depth, "SETITEM(S) on a non-dict", |value| match value {
            Value::Dict(d) => {
                // Copy-on-write: a dict that the memo shares is copied one level (its entries are
                // shared references), as mutating a memoised object must not change earlier uses.
                Rc::make_mut(d).extend(pairs);
                true
            }
            _ => false,
        })
    }

    /// Appends `items` of depth up to `inner` to the list on top.
    fn append(&mut self, items: Vec<Value>, inner: usize) -> Result<(), PickleError> {
        let depth = self.container_depth(inner)?;
        self.extend_top(depth, "APPEND(S) on a non-list", |value| match value {
            Value::List(l) => {
                Rc::make_mut(l).extend(items);
                true
            }
            _ => false,
        })
    }

    /// Adds to the container on top of the stack with `add`, which returns false (refused with
    /// `not_that_container`) when the top is not the kind it adds to; the top's depth becomes at
    /// least `depth`.
    fn extend_top(
        &mut self,
        depth: usize,
        not_that_container: &str,
        add: impl FnOnce(&mut Value) -> bool,
    ) -> Result<(), PickleError> {
        let top = self.top()?;
        if !add(&mut top.value) {
            return self.err(not_that_container);
        }
        top.depth = top.depth.max(depth);
        Ok(())
    }

    fn reduce(&mut self, callable: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Tuple(args) = args else { return self.err("REDUCE arguments are not a tuple") };
        match callable {
            Value::Global(Global::OrderedDict) => Ok(Value::Dict(Rc::default())),
            Value::Global(Global::RebuildParameter) => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => self.err("_rebuild_parameter without a tensor"),
            },
            Value::Global(Global::RebuildTensor) => {
                let (Some(Value::Storage(storage)), Some(Value::Int(offset)), Some(size), Some(stride)) =
                    (args.first(), args.get(1), args.get(2), args.get(3))
                else {
                    return self.err("_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, ...)");
                };
                let dims = |v: &Value| -> Option<Vec<usize>> {
                    match v {
                        Value::Tuple(t) => t
                            .iter()
                            .map(|d| if let Value::Int(i) = d { usize::try_from(*i).ok() } else { None })
                            .collect(),
                        _ => None,
                    }
                };
                let (Some(shape), Some(stride), Ok(offset)) = (dims(size), dims(stride), usize::try_from(*offset))
                else {
                    return self.err("tensor size, stride or offset is not a tuple of non-negative integers");
                };
                if shape.len() != stride.len() {
                    return self.err("tensor size and stride differ in length");
                }
                let storage = StorageRef::clone(storage);
                Ok(Value::Tensor(Rc::new(TensorRef { storage, offset, shape, stride })))
            }
            Value::Global(Global::StorageType(_)) => self.err("calling a storage type is not supported"),
            _ => self.err("REDUCE on a value that is not an allowed global"),
        }
    }

    fn persistent_load(&mut self, pid: Value) -> Result<Value, PickleError> {
        let Value::Tuple(items) = pid else { return self.err("persistent id is not a tuple") };
        match items.as_slice() {
            [Value::Str(kind), Value::Global(Global::StorageType(dtype)), Value::Str(key), _location, Value::Int(numel), ..]
                if &**kind == "storage" =>
            {
                let numel = usize::try_from(*numel).or_else(|_| self.err("negative storage size"))?;
                Ok(Value::Storage(Rc::new(StorageRef { dtype: *dtype, key: key.to_string(), numel })))
            }
            _ => self.err("persistent id is not ('storage', type, key, location, numel, ...)"),
        }
    }

    /// Pops `n` values and pushes them as a tuple.
    fn tuple_of(&mut self, n: usize) -> Result<(), PickleError> {
        let mut items = Vec::with_capacity(n);
        let mut deepest = 0;
        for _ in 0..n {
            let v = self.pop_nested()?;
            deepest = deepest.max(v.depth);
            items.push(v.value);
        }
        items.reverse();
        self.push_container(Value::Tuple(Rc::new(items)), deepest)
    }

    fn run(mut self) -> Result<(Value, usize), PickleError> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.take(8)?; // FRAME
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok((v, self.pos));
                }
                b'(' => {
                    self.marks.push(self.stack.len());
                    self.stack.push(Item::Mark);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push(Value::Int(v));
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Value::Int(v));
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.push(Value::Int(v));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes.
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    if n > 8 {
                        self.push(Value::BigInt(Rc::from(b)));
                        continue;
                    }
                    let mut v: i64 = 0;
                    for (i, byte) in b.iter().enumerate() {
                        v |= (*byte as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(Value::Int(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    self.push(Value::Float(v));
                }
                b'X' | b'T' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.push(v);
                }
                0x8c | b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.push(v);
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let v = Rc::from(self.take(n)?);
                    self.push(Value::Bytes(v));
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let v = Rc::from(self.take(n)?);
                    self.push(Value::Bytes(v));
                }
                b')' => self.push_container(Value::Tuple(Rc::default()), 0)?,
                b']' => self.push_container(Value::List(Rc::default()), 0)?,
                b'}' => self.push_container(Value::Dict(Rc::default()), 0)?,
                b't' => {
                    let (items, deepest) = self.pop_mark()?;
                    self.push_container(Value::Tuple(Rc::new(items)), deepest)?;
                }
                0x85 => self.tuple_of(1)?,
                0x86 => self.tuple_of(2)?,
                0x87 => self.tuple_of(3)?,
                b'l' => {
                    let (items, deepest) = self.pop_mark()?;
                    self.push_container(Value::List(Rc::new(items)), deepest)?;
                }
                b'd' => {
                    let (items, deepest) = self.pop_mark()?;
                    self.push_container(Value::Dict(Rc::default()), 0)?;
                    self.set_items(items, deepest)?;
                }
                b'a' => {
                    let v = self.pop_nested()?;
                    self.append(vec![v.value], v.depth)?;
                }
                b'e' => {
                    let (items, deepest) = self.pop_mark()?;
                    self.append(items, deepest)?;
                }
                b's' => {
                    let v = self.pop_nested()?;
                    let k = self.pop_nested()?;
                    self.set_items(vec![k.value, v.value], k.depth.max(v.depth))?;
                }
                b'u' => {
                    let (items, deepest) = self.pop_mark()?;
                    self.set_items(items, deepest)?;
                }
                // BINPUT, LONG_BINPUT, MEMOIZE (the next free key); BINGET, LONG_BINGET.
                b'q' | b'r' | 0x94 | b'h' | b'j' => {
                    let k = match op {
                        b'q' | b'h' => self.u8()? as u32,
                        b'r' | b'j' => self.u32()?,
                        _ => self.memo.len() as u32,
                    };
                    if matches!(op, b'h' | b'j') {
                        self.memo_get(k)?;
                    } else {
                        self.memo_put(k)?;
                    }
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = resolve_global(&module, &name)?;
                    self.push(Value::Global(g));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return self.err("STACK_GLOBAL needs two strings");
                    };
                    let g = resolve_global(&module, &name)?;
                    self.push(Value::Global(g));
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    // A rebuilt tensor holds its size and stride tuples: one level.
                    let depth = usize::from(matches!(v, Value::Tensor(_)));
                    self.stack.push(Item::Value(Nested { value: v, depth }));
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.push(v);
                }
                b'b' => {
                    // BUILD: object state. Dicts (OrderedDict's `_metadata`) and tensors keep
                    // nothing of it.
                    self.pop()?;
                    if !matches!(self.top()?.value, Value::Dict(_) | Value::Tensor(_)) {
                        return self.err("BUILD on an object that is not a dict or tensor");
                    }
                }
                other => return self.err(format!("unsupported pickle opcode {other:#04x}")),
            }
        }
    }
}
