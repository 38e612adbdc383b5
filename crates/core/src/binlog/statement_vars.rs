//! The small events that give a statement-based QUERY its inputs: INTVAR (`INSERT_ID`,
//! `LAST_INSERT_ID`), RAND (the seeds of `RAND()`) and USER_VAR (`@var` values), turned into the
//! `SET` statements `mariadb-binlog` prints for them.

use mysql_common::binlog::decimal::Decimal;

use crate::binlog::query_status::{push_identifier, CollationNames};
use crate::{Error, Result};

const LAST_INSERT_ID: u8 = 1;
const INSERT_ID: u8 = 2;

/// Result types of a user variable (sql/sql_type.h `Item_result`).
const STRING_RESULT: u8 = 0;
const REAL_RESULT: u8 = 1;
const INT_RESULT: u8 = 2;
const DECIMAL_RESULT: u8 = 4;
/// USER_VAR flag: the integer is unsigned.
const UNSIGNED_F: u8 = 1;

fn corrupt(what: &str) -> Error {
    Error::integrity(format!("corrupt {what} event"))
}

fn u64_at(body: &[u8], at: usize, what: &str) -> Result<u64> {
    body.get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| corrupt(what))
}

fn u32_at(body: &[u8], at: usize, what: &str) -> Result<u32> {
    body.get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .ok_or_else(|| corrupt(what))
}

/// `SET INSERT_ID=n` or `SET LAST_INSERT_ID=n` from an INTVAR body.
pub fn intvar_statement(body: &[u8]) -> Result<Vec<u8>> {
    let kind = *body.first().ok_or_else(|| corrupt("INTVAR"))?;
    let value = u64_at(body, 1, "INTVAR")?;
    let name = match kind {
        LAST_INSERT_ID => "LAST_INSERT_ID",
        INSERT_ID => "INSERT_ID",
        other => {
            return Err(Error::integrity(format!(
                "corrupt INTVAR event: unknown variable type {other}"
            )))
        }
    };
    Ok(format!("SET {name}={value}").into_bytes())
}

/// `SET @@RAND_SEED1=a, @@RAND_SEED2=b` from a RAND body.
pub fn rand_statement(body: &[u8]) -> Result<Vec<u8>> {
    let seed1 = u64_at(body, 0, "RAND")?;
    let seed2 = u64_at(body, 8, "RAND")?;
    Ok(format!("SET @@RAND_SEED1={seed1}, @@RAND_SEED2={seed2}").into_bytes())
}

/// `SET @`name`:=value` from a USER_VAR body; strings keep their character set and collation.
pub fn user_var_statement(body: &[u8], collations: &dyn CollationNames) -> Result<Vec<u8>> {
    let what = "USER_VAR";
    let name_len = u32_at(body, 0, what)? as usize;
    let name = body.get(4..4 + name_len).ok_or_else(|| corrupt(what))?;
    let mut at = 4 + name_len;
    let is_null = *body.get(at).ok_or_else(|| corrupt(what))? != 0;
    at += 1;
    let mut stmt = b"SET @".to_vec();
    push_identifier(&mut stmt, name);
    stmt.extend_from_slice(b":=");
    if is_null {
        stmt.extend_from_slice(b"NULL");
        return Ok(stmt);
    }
    let ty = *body.get(at).ok_or_else(|| corrupt(what))?;
    let charset = u32_at(body, at + 1, what)?;
    let len = u32_at(body, at + 5, what)? as usize;
    at += 9;
    let value = body.get(at..at + len).ok_or_else(|| corrupt(what))?;
    let flags = body.get(at + len).copied().unwrap_or(0);
    match ty {
        REAL_RESULT => {
            let bytes: [u8; 8] = value.try_into().map_err(|_| corrupt(what))?;
            let v = f64::from_le_bytes(bytes);
            if !v.is_finite() {
                return Err(corrupt(what));
            }
            stmt.extend_from_slice(format!("{v:?}").as_bytes());
        }
        INT_RESULT => {
            let bytes: [u8; 8] = value.try_into().map_err(|_| corrupt(what))?;
            let text = if flags & UNSIGNED_F != 0 {
                u64::from_le_bytes(bytes).to_string()
            } else {
                i64::from_le_bytes(bytes).to_string()
            };
            stmt.extend_from_slice(text.as_bytes());
        }
        DECIMAL_RESULT => {
            let (&precision, rest) = value.split_first().ok_or_else(|| corrupt(what))?;
            let (&scale, digits) = rest.split_first().ok_or_else(|| corrupt(what))?;
            if precision == 0 || precision > 65 || scale > precision || scale > 38 {
                return Err(corrupt(what));
            }
            let dec = Decimal::read_bin(digits, precision as usize, scale as usize, false)
                .map_err(|_| corrupt(what))?;
            stmt.extend_from_slice(dec.to_string().as_bytes());
        }
        STRING_RESULT => {
            let id = u16::try_from(charset).map_err(|_| corrupt(what))?;
            let (cs, coll) = collations.collation(id).ok_or_else(|| {
                Error::server(format!(
                    "user variable @{} uses collation id {id}, which the replay target does \
                     not know; replay into a server of the same or a newer version",
                    String::from_utf8_lossy(name)
                ))
            })?;
            stmt.extend_from_slice(format!("_{cs} X'").as_bytes());
            stmt.extend_from_slice(hex::encode(value).as_bytes());
            stmt.extend_from_slice(b"' COLLATE ");
            push_identifier(&mut stmt, coll.as_bytes());
        }
        other => {
            return Err(Error::integrity(format!(
                "corrupt USER_VAR event: unknown value type {other}"
            )))
        }
    }
    Ok(stmt)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Latin1;
    impl CollationNames for Latin1 {
        fn collation(&self, id: u16) -> Option<(&str, &str)> {
            (id == 8).then_some(("latin1", "latin1_swedish_ci"))
        }
    }

    fn user_var(name: &str, null: bool, ty: u8, cs: u32, value: &[u8], flags: &[u8]) -> Vec<u8> {
        let mut b = (name.len() as u32).to_le_bytes().to_vec();
        b.extend_from_slice(name.as_bytes());
        b.push(u8::from(null));
        if !null {
            b.push(ty);
            b.extend_from_slice(&cs.to_le_bytes());
            b.extend_from_slice(&(value.len() as u32).to_le_bytes());
            b.extend_from_slice(value);
            b.extend_from_slice(flags);
        }
        b
    }

    fn text(r: Result<Vec<u8>>) -> String {
        String::from_utf8(r.unwrap()).unwrap()
    }

    #[test]
    fn user_vars_of_every_type() {
        let c = &Latin1;
        let s = |b: Vec<u8>| text(user_var_statement(&b, c));
        assert_eq!(s(user_var("a", true, 0, 0, &[], &[])), "SET @`a`:=NULL");
        assert_eq!(
            s(user_var(
                "b",
                false,
                INT_RESULT,
                63,
                &(-5i64).to_le_bytes(),
                &[]
            )),
            "SET @`b`:=-5"
        );
        assert_eq!(
            s(user_var(
                "b",
                false,
                INT_RESULT,
                63,
                &u64::MAX.to_le_bytes(),
                &[1]
            )),
            format!("SET @`b`:={}", u64::MAX)
        );
        assert_eq!(
            s(user_var(
                "r",
                false,
                REAL_RESULT,
                63,
                &0.1f64.to_le_bytes(),
                &[]
            )),
            "SET @`r`:=0.1"
        );
        assert_eq!(
            s(user_var("s", false, STRING_RESULT, 8, b"\xe9'", &[])),
            "SET @`s`:=_latin1 X'e927' COLLATE `latin1_swedish_ci`"
        );
        // DECIMAL(5,2) 123.45: intg 3 digits -> 2 bytes, frac 2 digits -> 1 byte, sign bit set.
        let dec = [5u8, 2, 0x80, 0x7b, 0x2d];
        assert_eq!(
            s(user_var("d", false, DECIMAL_RESULT, 63, &dec, &[])),
            "SET @`d`:=123.45"
        );
        assert!(user_var_statement(&user_var("s", false, 0, 999, b"x", &[]), c).is_err());
    }

    #[test]
    fn short_bodies_are_errors() {
        let full = user_var("name", false, INT_RESULT, 63, &7i64.to_le_bytes(), &[]);
        for len in 0..full.len() {
            assert!(user_var_statement(&full[..len], &Latin1).is_err(), "{len}");
        }
        assert!(intvar_statement(&[2, 1, 2]).is_err());
        assert!(rand_statement(&[0; 15]).is_err());
        let mut iv = vec![INSERT_ID];
        iv.extend_from_slice(&42u64.to_le_bytes());
        assert_eq!(text(intvar_statement(&iv)), "SET INSERT_ID=42");
        let mut r = 1u64.to_le_bytes().to_vec();
        r.extend_from_slice(&2u64.to_le_bytes());
        assert_eq!(
            text(rand_statement(&r)),
            "SET @@RAND_SEED1=1, @@RAND_SEED2=2"
        );
    }
}
