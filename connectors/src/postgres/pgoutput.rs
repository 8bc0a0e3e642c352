//! Decoder of the pgoutput messages (protocol version 1, text format) the
//! transport hands over between a transaction's Begin and Commit: the
//! transport itself reads Begin, Commit and logical messages.
//!
//! Reference: PostgreSQL's "Logical Replication Message Formats". Every
//! read is bounds-checked: a malformed message is an error, never a panic.

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    /// A table's layout, sent before its first change in a session and
    /// again after it changed.
    Relation(Relation),
    /// The transaction came from a session with this replication origin.
    Origin {
        name: String,
    },
    Insert {
        relation: u32,
        new: Tuple,
    },
    Update {
        relation: u32,
        /// The old key (`K`, when the key changed) or old row (`O`, under
        /// REPLICA IDENTITY FULL).
        old: Option<Tuple>,
        new: Tuple,
    },
    Delete {
        relation: u32,
        /// The old key or, under REPLICA IDENTITY FULL, the old row.
        old: Tuple,
    },
    Truncate {
        relations: Vec<u32>,
    },
    /// A message the connector has no use for (Type, stream control).
    Other(u8),
}

/// A table as pgoutput describes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    pub columns: Vec<RelationColumn>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RelationColumn {
    pub name: String,
    pub type_oid: u32,
}

/// One column of a row image.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    /// An unchanged TOASTed value that pgoutput does not resend.
    Unchanged,
    Text(String),
}

pub(crate) type Tuple = Vec<Cell>;

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pgoutput message {tag:?}: {reason}")]
pub(crate) struct DecodeError {
    tag: char,
    reason: &'static str,
}

struct Reader<'a> {
    buf: &'a [u8],
    tag: u8,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: &'static str) -> DecodeError {
        DecodeError {
            tag: char::from(self.tag),
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(self.err("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(drop)
    }

    /// A NUL-terminated string.
    fn cstr(&mut self) -> Result<String, DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err("unterminated string"))?;
        let s = std::str::from_utf8(&self.buf[..end])
            .map_err(|_| self.err("string is not UTF-8"))?
            .to_string();
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let n = self.u16()?;
        let mut cells = Vec::with_capacity(usize::from(n).min(self.buf.len()));
        for _ in 0..n {
            cells.push(match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    let bytes = self.take(len)?;
                    let text = std::str::from_utf8(bytes)
                        .map_err(|_| self.err("column text is not UTF-8"))?;
                    Cell::Text(text.to_string())
                }
                b'b' => return Err(self.err("binary column (binary mode is not used)")),
                _ => return Err(self.err("unknown column kind")),
            });
        }
        Ok(cells)
    }
}

/// Decodes one pgoutput message.
pub(crate) fn decode(data: &[u8]) -> Result<Message, DecodeError> {
    let Some((&tag, body)) = data.split_first() else {
        return Err(DecodeError {
            tag: '?',
            reason: "empty message",
        });
    };
    let mut r = Reader { buf: body, tag };
    Ok(match tag {
        b'R' => {
            let id = r.u32()?;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            let _replica_identity = r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(usize::from(n).min(r.buf.len()));
            for _ in 0..n {
                let _flags = r.u8()?;
                let name = r.cstr()?;
                let type_oid = r.u32()?;
                let _typmod = r.u32()?;
                columns.push(RelationColumn { name, type_oid });
            }
            Message::Relation(Relation {
                id,
                namespace,
                name,
                columns,
            })
        }
        b'O' => {
            r.skip(8)?; // the origin's LSN
            Message::Origin { name: r.cstr()? }
        }
        b'I' => {
            let relation = r.u32()?;
            if r.u8()? != b'N' {
                return Err(r.err("insert without a new row"));
            }
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(r.err("update without a new row"));
            }
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'K' | b'O' => {}
                _ => return Err(r.err("delete without an old key")),
            }
            Message::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            r.skip(1)?; // options (CASCADE, RESTART IDENTITY)
            let mut relations = Vec::new();
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate { relations }
        }
        other => Message::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation_bytes() -> Vec<u8> {
        let mut v = vec![b'R'];
        v.extend(7u32.to_be_bytes());
        v.extend(b"public\0res_partner\0d");
        v.extend(2u16.to_be_bytes());
        v.push(1);
        v.extend(b"id\0");
        v.extend(23u32.to_be_bytes());
        v.extend((-1i32).to_be_bytes());
        v.push(0);
        v.extend(b"comment\0");
        v.extend(25u32.to_be_bytes());
        v.extend((-1i32).to_be_bytes());
        v
    }

    #[test]
    fn decodes_relation_and_update_with_unchanged_toast() {
        let Message::Relation(rel) = decode(&relation_bytes()).unwrap() else {
            panic!("not a relation");
        };
        assert_eq!(rel.name, "res_partner");
        assert_eq!(rel.columns[1].type_oid, 25);

        let mut v = vec![b'U'];
        v.extend(7u32.to_be_bytes());
        v.push(b'N');
        v.extend(2u16.to_be_bytes());
        v.push(b't');
        v.extend(2u32.to_be_bytes());
        v.extend(b"42");
        v.push(b'u');
        assert_eq!(
            decode(&v).unwrap(),
            Message::Update {
                relation: 7,
                old: None,
                new: vec![Cell::Text("42".into()), Cell::Unchanged],
            }
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let full = relation_bytes();
        for n in 0..full.len() {
            assert!(decode(&full[..n]).is_err(), "prefix of {n} bytes");
        }
        // A length past the end of the message.
        let mut v = vec![b'I'];
        v.extend(7u32.to_be_bytes());
        v.push(b'N');
        v.extend(1u16.to_be_bytes());
        v.push(b't');
        v.extend(u32::MAX.to_be_bytes());
        assert!(decode(&v).is_err());
    }

    #[test]
    fn decodes_origin_and_delete() {
        let mut v = vec![b'O'];
        v.extend(0u64.to_be_bytes());
        v.extend(b"mdhub_odoo\0");
        assert_eq!(
            decode(&v).unwrap(),
            Message::Origin {
                name: "mdhub_odoo".into()
            }
        );
        let mut v = vec![b'D'];
        v.extend(7u32.to_be_bytes());
        v.push(b'K');
        v.extend(2u16.to_be_bytes());
        v.push(b't');
        v.extend(1u32.to_be_bytes());
        v.extend(b"9");
        v.push(b'n');
        assert_eq!(
            decode(&v).unwrap(),
            Message::Delete {
                relation: 7,
                old: vec![Cell::Text("9".into()), Cell::Null],
            }
        );
    }
}
