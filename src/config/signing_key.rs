//! The private key of `oauth.signing_key_file` / `oauth.signing_key` (`private_key_jwt`),
//! parsed while the config is loaded so that a bad key or a mismatched algorithm is a
//! configuration error rather than a failed login. The assertions it signs are `oauth`'s.
//!
//! The PEM and DER decoding is jsonwebtoken's own (`use_pem`: PKCS#8 EC and RSA, PKCS#1
//! RSA); only the PEM label is looked at here, to say what to do with a SEC1 or an
//! encrypted key, which jsonwebtoken refuses without saying why.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A private key mcpo signs client assertions with, and the JWS algorithm it uses.
#[derive(Clone)]
pub struct SigningKey {
    key: EncodingKey,
    algorithm: Algorithm,
    /// The PEM text, kept only to compare keys (a reload compares configurations).
    pem: String,
}

/// Equal when the same key text signs with the same algorithm.
impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.algorithm == other.algorithm && self.pem == other.pem
    }
}

impl Eq for SigningKey {}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The algorithms a key may be configured with (`oauth.signing_algorithm`).
    pub const ALGORITHMS: &[(&str, Algorithm)] = &[
        ("ES256", Algorithm::ES256),
        ("ES384", Algorithm::ES384),
        ("RS256", Algorithm::RS256),
        ("RS384", Algorithm::RS384),
        ("RS512", Algorithm::RS512),
        ("PS256", Algorithm::PS256),
        ("PS384", Algorithm::PS384),
        ("PS512", Algorithm::PS512),
    ];

    /// Reads a PEM private key (PKCS#8 `PRIVATE KEY` for EC or RSA, or PKCS#1
    /// `RSA PRIVATE KEY`). Without `algorithm`, an EC key signs with ES256 or ES384 (by its
    /// curve) and an RSA key with RS256. The key is tried once here, so a bad key or a
    /// mismatched algorithm is a configuration error rather than a failed login.
    pub fn from_pem(pem: &str, algorithm: Option<&str>) -> Result<SigningKey, String> {
        let candidates: Vec<Algorithm> = match algorithm {
            Some(name) => {
                let found = Self::ALGORITHMS
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, a)| *a);
                match found {
                    Some(a) => vec![a],
                    None => {
                        let names: Vec<&str> = Self::ALGORITHMS.iter().map(|(n, _)| *n).collect();
                        return Err(format!(
                            "signing_algorithm \"{name}\" is not one of {}",
                            names.join(", ")
                        ));
                    }
                }
            }
            None => vec![Algorithm::ES256, Algorithm::ES384, Algorithm::RS256],
        };
        match pem_label(pem)? {
            "PRIVATE KEY" | "RSA PRIVATE KEY" => {}
            "EC PRIVATE KEY" => {
                return Err(
                    "the key is a SEC1 \"EC PRIVATE KEY\"; convert it to PKCS#8 with \
                     `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`"
                        .to_owned(),
                );
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err("the key is encrypted; mcpo needs an unencrypted PKCS#8 key".to_owned());
            }
            other => return Err(format!("expected a PEM private key, found \"{other}\"")),
        }
        let ec = EncodingKey::from_ec_pem(pem.as_bytes()).ok();
        let rsa = EncodingKey::from_rsa_pem(pem.as_bytes()).ok();
        for algorithm in candidates {
            let key = match algorithm {
                Algorithm::ES256 | Algorithm::ES384 => ec.clone(),
                _ => rsa.clone(),
            };
            let Some(key) = key else { continue };
            let key = SigningKey {
                key,
                algorithm,
                pem: pem.to_owned(),
            };
            if key.sign(&json!({"probe": true})).is_ok() {
                return Ok(key);
            }
        }
        Err(match algorithm {
            Some(name) => format!("the key cannot sign with {name}"),
            None => "the key is not a usable EC (P-256, P-384) or RSA private key".to_owned(),
        })
    }

    /// A JWS of `claims` (typed `JWT`) signed with this key.
    pub fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, claims, &self.key)
    }

    /// The JWS algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// The label of the first PEM block of `pem` (`PRIVATE KEY`, `EC PRIVATE KEY`…).
fn pem_label(pem: &str) -> Result<&str, String> {
    let begin = pem
        .find("-----BEGIN ")
        .ok_or("not a PEM file (no \"-----BEGIN\" line)")?;
    let rest = &pem[begin + "-----BEGIN ".len()..];
    let end = rest.find("-----").ok_or("a PEM header is malformed")?;
    Ok(&rest[..end])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A throwaway P-256 key (PKCS#8), generated for these tests only.
    pub(crate) const EC_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsAPEOYIYVCXBSnFp
orynW8lHeYDwm+nvexo9XgsJnkihRANCAASeDdMv4r32KXRqNOqbBVQIVfqS56mS
iZzGab0Hx0sSRWBNvbyv6NWM8x92uWwzckZnhqT6nTueRMWFT3kzfmwI
-----END PRIVATE KEY-----
";

    /// A throwaway RSA 2048 key (PKCS#8), generated for these tests only.
    const RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC8+mDG4MoOkcbD
y/+OdtWlwrKL2mpNIm7+hiVippO90NL+YRE98Pdop3prkAAJWscZ6xxk0PO8nhKs
7YPyidgbmrDMTr7NnidUENBqaMgaHOsMxQffc6UJh/PuaRlCxcWr860DkwHbfM8b
leIEMTGIIUPBmToX6y50tPD9pvcOf+Iva0bYm/9v9eawDwOhEfsH01rg+YyuMT8u
nAGoaDn5xlKaUKn5JbiQUcmXUlgBlrw8X9K0EpNAkcgRNDKjPuedkgFOyL4fBz06
8aDbEViyVcfSpXBQcb80bOGdbS0mLVfynrZXUcB+fHVe+RwLIMBahSpJgpKiSHE+
VhbCfHdfAgMBAAECggEAJ/0jdXIjz6lxUgVc8pya4RSuC4IQdHoQ2rMwPgvZv5Ts
0P9hUqYm9HJcKV6zY0deUlG6FGtS6FrawNUR0sTwggbd2p3fKkuJLvTP5XR+w2fT
JUScQeCKz9WA/LYorkSDa7uIpPT6s6NZgBDbXt+6B4BighkWffE6R1/yjvpB1UNF
VwTyyhC6eSnspP+D5sSfrVGoXywtzcmnGODsYfKhcWhuOnBXlE+3ZKDe/8IWIYRE
kRUT/kh8J0dFhGIABm9e0zjruH9RvJ2fvxlftUePUI638sJ7gtWpQSqdrgRpRdry
pkjCkX/CSwnyK1JjPUbH8CpcpdgYMV2r22j/gpIIwQKBgQDdCLY9pwIecyfFAHMj
zzlDXaCW2ZORCdcuWwMc4Dor80Wznp2YIVIvlLx0ZBOJqnID1ZoSOwCYDIJ6L6j+
3hnMNXLnpfUo3sbofZZe2iiQirlP68uCQLRpLWWwvL5Q625/7UpDyczLkTiUE4Js
o5jxhLlq+UCv6gk+z7TLvB02WQKBgQDa33vsyK9IQOChvib4cJdAOzGNmBzdQgIb
aaNIHccPgGBJRuTfsb0FBqeBDIicNgTuWlZPEWQxZ9TiAjCFNN/lh7qy2W4pJtzK
DnwjYpykj+iDZLO2lYOqhV59b+RoHNYq61lz6f8qCg7XYH9Z1MZmqu1BVxxWeO6w
mmacZ0tUdwKBgAc20JPkjool4gdpA1kI22qadLJXuZxDQPWvXMOlgeCLWRwKskQT
2lXZOelmlsioen4ri5LKwDM2PU/1nENtRlRG7lAnN4A0/TL7XlwMLMTC8ldsb8D5
kanZJHeHQYLsnDeqrADYZknCnKEgneIj2MsRNOgL6JOVROX664C2zBFJAoGAXWan
XKlbW4sMERmzSavKb8eS4ui50JW9jnMrEbhbXTscW8jcHLWdgwqO6pwto/PNcOWu
FTnHtumnR/dFO2MP9MRSIMZ2oysJZ1R9FyCa1gLvZzrPEiiFsnwNkZvxLZi4sEIU
v0lo8UivgquUTQJm1CM28f45gpFC0qxhA3d1BwsCgYAuejQR2yxtpXFVRMzMdgrx
dHIg6gS0bMpkZ01X6e25g1r4slNHU3zWDgbj4+Q5c1x+HNIM7D6whDlJpDh0F0W/
/PuUMENa12sQ91CbuyiKQE9p+Da45TU/PuGJdfQ1vNnd8+pMmBd6HOeZfQR7K21b
ti+oVKxb0vIEuRK5gzKVJA==
-----END PRIVATE KEY-----
";

    /// [`RSA_KEY`] as PKCS#1 (`openssl rsa -traditional`).
    const RSA_KEY_PKCS1: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEAvPpgxuDKDpHGw8v/jnbVpcKyi9pqTSJu/oYlYqaTvdDS/mER
PfD3aKd6a5AACVrHGescZNDzvJ4SrO2D8onYG5qwzE6+zZ4nVBDQamjIGhzrDMUH
33OlCYfz7mkZQsXFq/OtA5MB23zPG5XiBDExiCFDwZk6F+sudLTw/ab3Dn/iL2tG
2Jv/b/XmsA8DoRH7B9Na4PmMrjE/LpwBqGg5+cZSmlCp+SW4kFHJl1JYAZa8PF/S
tBKTQJHIETQyoz7nnZIBTsi+Hwc9OvGg2xFYslXH0qVwUHG/NGzhnW0tJi1X8p62
V1HAfnx1XvkcCyDAWoUqSYKSokhxPlYWwnx3XwIDAQABAoIBACf9I3VyI8+pcVIF
XPKcmuEUrguCEHR6ENqzMD4L2b+U7ND/YVKmJvRyXCles2NHXlJRuhRrUuha2sDV
EdLE8IIG3dqd3ypLiS70z+V0fsNn0yVEnEHgis/VgPy2KK5Eg2u7iKT0+rOjWYAQ
217fugeAYoIZFn3xOkdf8o76QdVDRVcE8soQunkp7KT/g+bEn61RqF8sLc3Jpxjg
7GHyoXFobjpwV5RPt2Sg3v/CFiGERJEVE/5IfCdHRYRiAAZvXtM467h/Ubydn78Z
X7VHj1COt/LCe4LVqUEqna4EaUXa8qZIwpF/wksJ8itSYz1Gx/AqXKXYGDFdq9to
/4KSCMECgYEA3Qi2PacCHnMnxQBzI885Q12gltmTkQnXLlsDHOA6K/NFs56dmCFS
L5S8dGQTiapyA9WaEjsAmAyCei+o/t4ZzDVy56X1KN7G6H2WXtookIq5T+vLgkC0
aS1lsLy+UOtuf+1KQ8nMy5E4lBOCbKOY8YS5avlAr+oJPs+0y7wdNlkCgYEA2t97
7MivSEDgob4m+HCXQDsxjZgc3UICG2mjSB3HD4BgSUbk37G9BQangQyInDYE7lpW
TxFkMWfU4gIwhTTf5Ye6stluKSbcyg58I2KcpI/og2SztpWDqoVefW/kaBzWKutZ
c+n/KgoO12B/WdTGZqrtQVccVnjusJpmnGdLVHcCgYAHNtCT5I6KJeIHaQNZCNtq
mnSyV7mcQ0D1r1zDpYHgi1kcCrJEE9pV2TnpZpbIqHp+K4uSysAzNj1P9ZxDbUZU
Ru5QJzeANP0y+15cDCzEwvJXbG/A+ZGp2SR3h0GC7Jw3qqwA2GZJwpyhIJ3iI9jL
ETToC+iTlUTl+uuAtswRSQKBgF1mp1ypW1uLDBEZs0mrym/HkuLoudCVvY5zKxG4
W107HFvI3By1nYMKjuqcLaPzzXDlrhU5x7bpp0f3RTtjD/TEUiDGdqMrCWdUfRcg
mtYC72c6zxIohbJ8DZGb8S2YuLBCFL9JaPFIr4KrlE0CZtQjNvH+OYKRQtKsYQN3
dQcLAoGALno0EdssbaVxVUTMzHYK8XRyIOoEtGzKZGdNV+ntuYNa+LJTR1N81g4G
4+PkOXNcfhzSDOw+sIQ5SaQ4dBdFv/z7lDBDWtdrEPdQm7soikBPafg2uOU1Pz7h
iXX0NbzZ3fPqTJgXehznmX0EeyttW7YvqFSsW9LyBLkSuYMylSQ=
-----END RSA PRIVATE KEY-----
";

    #[test]
    fn rsa_keys_sign_rs256_in_pkcs8_and_pkcs1_form() {
        let key = SigningKey::from_pem(RSA_KEY, None).unwrap();
        assert_eq!(key.algorithm, Algorithm::RS256);
        let jwt = key.sign(&json!({"probe": true})).unwrap();
        assert_eq!(jwt.split('.').count(), 3);
        // The same key as PKCS#1 ("RSA PRIVATE KEY"), and with another algorithm.
        let key = SigningKey::from_pem(RSA_KEY_PKCS1, Some("PS256")).unwrap();
        assert_eq!(key.algorithm, Algorithm::PS256);
        assert!(key.sign(&json!({"probe": true})).is_ok());
        assert!(SigningKey::from_pem(RSA_KEY, Some("ES256")).is_err());
    }

    #[test]
    fn bad_keys_and_algorithms_are_named() {
        let err = SigningKey::from_pem(EC_KEY, Some("RS256")).unwrap_err();
        assert!(err.contains("cannot sign with RS256"), "{err}");
        let err = SigningKey::from_pem(EC_KEY, Some("HS256")).unwrap_err();
        assert!(err.contains("not one of"), "{err}");
        let err = SigningKey::from_pem("hello", None).unwrap_err();
        assert!(err.contains("not a PEM"), "{err}");
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        let err = SigningKey::from_pem(sec1, None).unwrap_err();
        assert!(err.contains("PKCS#8"), "{err}");
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(SigningKey::from_pem(cert, None).is_err());
    }
}
