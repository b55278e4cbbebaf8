//! Iterative printing of terms and patterns from their token streams (no recursion, so a
//! 100,000-deep term prints without overflowing the stack).

use core::fmt;

use smallvec::SmallVec;

use crate::pattern::{PTok, Rest};
use crate::term::Tok;

#[derive(Clone, Copy)]
enum Kind<'a> {
    List,
    Tuple,
    Record,
    PList(&'a Rest),
    PRecord(&'a Rest),
    And,
    Or,
}

/// Printer state: the open containers (with how many items each has printed) and whether the
/// next item is glued to what precedes it (after `key: `, `x @ `, `!`).
#[derive(Default)]
pub(crate) struct Printer<'a> {
    open: SmallVec<[(Kind<'a>, usize); 16]>,
    glued: bool,
}

impl<'a> Printer<'a> {
    /// Writes the separator owed before a new item, if any.
    fn item(&mut self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if core::mem::take(&mut self.glued) {
            return Ok(());
        }
        if let Some((kind, n)) = self.open.last_mut() {
            if *n > 0 {
                f.write_str(match kind {
                    Kind::And => " & ",
                    Kind::Or => " | ",
                    _ => ", ",
                })?;
            }
            *n += 1;
        }
        Ok(())
    }

    fn push(&mut self, f: &mut fmt::Formatter<'_>, kind: Kind<'a>) -> fmt::Result {
        self.item(f)?;
        self.open.push((kind, 0));
        f.write_str(match kind {
            Kind::List | Kind::PList(_) => "[",
            Kind::Tuple | Kind::And | Kind::Or => "(",
            Kind::Record | Kind::PRecord(_) => "{",
        })
    }

    fn close(&mut self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((kind, n)) = self.open.pop() else {
            return Ok(());
        };
        let sep = if n > 0 { ", " } else { "" };
        match kind {
            Kind::List => f.write_str("]"),
            Kind::Record => f.write_str("}"),
            Kind::Tuple if n == 1 => f.write_str(",)"),
            Kind::Tuple => f.write_str(")"),
            Kind::And if n == 0 => f.write_str("&)"),
            Kind::Or if n == 0 => f.write_str("|)"),
            Kind::And | Kind::Or => f.write_str(")"),
            Kind::PList(rest) | Kind::PRecord(rest) => {
                match rest {
                    Rest::Exact => Ok(()),
                    Rest::Ignore => write!(f, "{sep}.."),
                    Rest::Bind(name) => write!(f, "{sep}..{name}"),
                }?;
                f.write_str(if matches!(kind, Kind::PList(_)) {
                    "]"
                } else {
                    "}"
                })
            }
        }
    }

    pub(crate) fn term_tok(&mut self, f: &mut fmt::Formatter<'_>, tok: Tok<'a>) -> fmt::Result {
        match tok {
            Tok::EndList | Tok::EndTuple | Tok::EndRecord => self.close(f),
            Tok::List => self.push(f, Kind::List),
            Tok::Tuple => self.push(f, Kind::Tuple),
            Tok::Record => self.push(f, Kind::Record),
            Tok::Key(k) => self.key(f, k),
            Tok::Bool(b) => {
                self.item(f)?;
                write!(f, "{b}")
            }
            Tok::Int(i) => {
                self.item(f)?;
                write!(f, "{i}")
            }
            Tok::Str(s) => {
                self.item(f)?;
                write!(f, "{s:?}")
            }
            Tok::Bytes(b) => {
                self.item(f)?;
                write!(f, "b\"{}\"", b.escape_ascii())
            }
        }
    }

    fn key(&mut self, f: &mut fmt::Formatter<'_>, k: &str) -> fmt::Result {
        self.item(f)?;
        self.glued = true;
        write!(f, "{k:?}: ")
    }

    pub(crate) fn pattern_tok(&mut self, f: &mut fmt::Formatter<'_>, tok: PTok<'a>) -> fmt::Result {
        match tok {
            PTok::T(t) => self.term_tok(f, t),
            PTok::End => self.close(f),
            PTok::Wildcard => {
                self.item(f)?;
                f.write_str("_")
            }
            PTok::Bind(name, sub) => {
                self.item(f)?;
                f.write_str(name)?;
                if sub {
                    self.glued = true;
                    f.write_str(" @ ")?;
                }
                Ok(())
            }
            PTok::Lit => {
                // The literal's first term token follows directly.
                self.item(f)?;
                self.glued = true;
                Ok(())
            }
            PTok::List(rest) => self.push(f, Kind::PList(rest)),
            PTok::Tuple => self.push(f, Kind::Tuple),
            PTok::Record(rest) => self.push(f, Kind::PRecord(rest)),
            PTok::Key(k) => self.key(f, k),
            PTok::And => self.push(f, Kind::And),
            PTok::Or => self.push(f, Kind::Or),
            PTok::Not => {
                self.item(f)?;
                self.glued = true;
                f.write_str("!")
            }
            PTok::Pred(name) => {
                self.item(f)?;
                write!(f, "?{name}")
            }
        }
    }
}
