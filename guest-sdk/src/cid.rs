//! Who submitted the transaction, as Fabric's client-identity library (`cid`) reads it: the MSP
//! id, an X.509 id built from the certificate's subject and issuer, and the attributes a Fabric
//! CA puts into the certificates it issues.

use std::collections::BTreeMap;

use ccvm_proto::Message;
use ccvm_proto::msp::SerializedIdentity;
use x509_parser::der_parser::oid::Oid;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::error::ShimError;
use crate::stub::Stub;

/// The extension in which a Fabric CA stores a certificate's attributes (`hf.*` and custom ones),
/// as JSON: `{"attrs": {"name": "value", ...}}`.
///
/// ```
/// # use ccvm_guest_sdk::cid::ClientIdentity;
/// # use ccvm_guest_sdk::proto::{Message, msp::SerializedIdentity};
/// # let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/user1-cert.pem")).unwrap();
/// # let creator = SerializedIdentity { mspid: "Org1MSP".to_owned(), id_bytes: pem }.encode_to_vec();
/// # let caller = ClientIdentity::from_creator(&creator)?;
/// // A Fabric CA certificate's extension 1.2.3.4.5.6.7.8.1 holds
/// // {"attrs":{"hf.EnrollmentID":"user1","hf.Type":"client","role":"auditor",...}}
/// assert_eq!(caller.attribute("hf.Type"), Some("client"));
/// # Ok::<(), ccvm_guest_sdk::ShimError>(())
/// ```
pub const ATTRIBUTES_OID: &str = "1.2.3.4.5.6.7.8.1";

/// The distinguished-name attributes Fabric's `cid` names, in the order it prints them.
const NAMED_ATTRIBUTES: [(&str, &str); 9] = [
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.3", "CN"),
    ("2.5.4.11", "OU"),
    ("2.5.4.10", "O"),
    ("2.5.4.17", "POSTALCODE"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.6", "C"),
];

/// The submitter of a transaction.
///
/// ```no_run
/// use ccvm_guest_sdk::cid::ClientIdentity;
/// use ccvm_guest_sdk::{ShimError, Stub};
///
/// /// Lets only auditors of Org1 through.
/// fn require_auditor(stub: &Stub<'_>) -> Result<String, ShimError> {
///     let caller = ClientIdentity::from_stub(stub)?;
///     if caller.msp_id() != "Org1MSP" {
///         return Err(ShimError::InvalidArgument(format!("{} is not of Org1", caller.id())));
///     }
///     caller.assert_attribute("role", "auditor")?;
///     Ok(caller.attribute("hf.EnrollmentID").unwrap_or_default().to_owned())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    msp_id: String,
    id: String,
    certificate: Vec<u8>,
    attributes: BTreeMap<String, String>,
}

impl ClientIdentity {
    /// The creator of the stub's transaction.
    ///
    /// ```
    /// # use ccvm_guest_sdk::mock::{MockCall, MockLedger};
    /// # use ccvm_guest_sdk::cid::ClientIdentity;
    /// # let mut ledger = MockLedger::new("assets");
    /// # let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/user1-cert.pem")).unwrap();
    /// # let outcome = ledger.run_call(MockCall::default().creator("Org1MSP", &pem), |stub| {
    /// let caller = ClientIdentity::from_stub(stub)?;
    /// assert_eq!((caller.msp_id(), caller.attribute("hf.EnrollmentID")), ("Org1MSP", Some("user1")));
    /// # Ok(())
    /// # });
    /// # assert!(outcome.committed, "{:?}", outcome.response);
    /// ```
    ///
    /// # Errors
    /// As [`Self::from_creator`].
    pub fn from_stub(stub: &Stub<'_>) -> Result<Self, ShimError> {
        Self::from_creator(stub.creator())
    }

    /// Reads an encoded `msp.SerializedIdentity` holding a PEM X.509 certificate.
    ///
    /// ```
    /// use ccvm_guest_sdk::cid::ClientIdentity;
    /// use ccvm_guest_sdk::proto::{Message, msp::SerializedIdentity};
    ///
    /// # let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/user1-cert.pem")).unwrap();
    /// let creator = SerializedIdentity { mspid: "Org1MSP".to_owned(), id_bytes: pem }.encode_to_vec();
    /// let caller = ClientIdentity::from_creator(&creator)?;
    /// assert_eq!(caller.msp_id(), "Org1MSP");
    /// assert!(ClientIdentity::from_creator(b"not an identity").is_err());
    /// # Ok::<(), ccvm_guest_sdk::ShimError>(())
    /// ```
    ///
    /// # Errors
    /// [`ShimError::InvalidArgument`] for bytes that are not such an identity.
    pub fn from_creator(creator: &[u8]) -> Result<Self, ShimError> {
        let identity = SerializedIdentity::decode(creator)
            .map_err(|e| invalid(format!("the creator is not a serialized identity: {e}")))?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(&identity.id_bytes)
            .map_err(|e| invalid(format!("the creator's certificate is not PEM: {e}")))?;
        let (_, certificate) = X509Certificate::from_der(&pem.contents)
            .map_err(|e| invalid(format!("the creator's certificate does not parse: {e}")))?;
        let id = format!(
            "x509::{}::{}",
            distinguished_name(certificate.subject()),
            distinguished_name(certificate.issuer())
        );
        let attributes = attributes(&certificate)?;
        Ok(Self {
            msp_id: identity.mspid,
            id,
            certificate: pem.contents.clone(),
            attributes,
        })
    }

    /// The MSP id of the submitter's organization.
    ///
    /// ```
    /// # use ccvm_guest_sdk::cid::ClientIdentity;
    /// # use ccvm_guest_sdk::proto::{Message, msp::SerializedIdentity};
    /// # let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/user1-cert.pem")).unwrap();
    /// # let creator = SerializedIdentity { mspid: "Org1MSP".to_owned(), id_bytes: pem }.encode_to_vec();
    /// # let caller = ClientIdentity::from_creator(&creator)?;
    /// assert_eq!(caller.msp_id(), "Org1MSP");
    /// # Ok::<(), ccvm_guest_sdk::ShimError>(())
    /// ```
    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    /// `x509::SUBJECT::ISSUER`, each distinguished name written as Fabric's `cid` writes it
    /// (`CN=user1,OU=client,O=Org1,C=US`).
    ///
    /// ```
    /// # use ccvm_guest_sdk::cid::ClientIdentity;
    /// # use ccvm_guest_sdk::proto::{Message, msp::SerializedIdentity};
    /// # let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/user1-cert.pem")).unwrap();
    /// # let creator = SerializedIdentity { mspid: "Org1MSP".to_owned(), id_bytes: pem }.encode_to_vec();
    /// # let caller = ClientIdentity::from_creator(&creator)?;
    /// assert_eq!(
    ///     caller.id(),
    ///     "x509::CN=user1,OU=client,O=Org1,C=US::CN=ca.org1.example.com,O=org1.example.com,C=US"
    /// );
    /// # Ok::<(), ccvm_guest_sdk::ShimError>(())
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The submitter's certificate, DER-encoded.
    ///
    /// ```
    /// # use ccvm_guest_sdk::cid::ClientIdentity;
    /// # use ccvm_guest_sdk::proto::{Message, msp::SerializedIdentity};
    /// # let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/user1-cert.pem")).unwrap();
    /// # let creator = SerializedIdentity { mspid: "Org1MSP".to_owned(), id_bytes: pem }.encode_to_vec();
    /// # let caller = ClientIdentity::from_creator(&creator)?;
    /// let der = caller.certificate_der();
    /// assert_eq!(der[0], 0x30, "a DER SEQUENCE");
    /// # Ok::<(), ccvm_guest_sdk::ShimError>(())
    /// ```
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// The value of a Fabric CA attribute (`hf.EnrollmentID`, `hf.Type`, `hf.Affiliation` or
    /// one of the CA's own), if the certificate has it.
    ///
    /// ```
    /// # use ccvm_guest_sdk::cid::ClientIdentity;
    /// # use ccvm_guest_sdk::proto::{Message, msp::SerializedIdentity};
    /// # let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/user1-cert.pem")).unwrap();
    /// # let creator = SerializedIdentity { mspid: "Org1MSP".to_owned(), id_bytes: pem }.encode_to_vec();
    /// # let caller = ClientIdentity::from_creator(&creator)?;
    /// assert_eq!(caller.attribute("hf.Affiliation"), Some("org1.department1"));
    /// assert_eq!(caller.attribute("clearance"), None);
    /// # Ok::<(), ccvm_guest_sdk::ShimError>(())
    /// ```
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// Succeeds only if attribute `name` has exactly `value`.
    ///
    /// ```
    /// # use ccvm_guest_sdk::cid::ClientIdentity;
    /// # use ccvm_guest_sdk::proto::{Message, msp::SerializedIdentity};
    /// # let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/user1-cert.pem")).unwrap();
    /// # let creator = SerializedIdentity { mspid: "Org1MSP".to_owned(), id_bytes: pem }.encode_to_vec();
    /// # let caller = ClientIdentity::from_creator(&creator)?;
    /// caller.assert_attribute("role", "auditor")?;
    /// let refused = caller.assert_attribute("role", "admin").unwrap_err();
    /// assert_eq!(refused.to_string(), "Attribute 'role' equals 'auditor', not 'admin'");
    /// # Ok::<(), ccvm_guest_sdk::ShimError>(())
    /// ```
    ///
    /// # Errors
    /// [`ShimError::InvalidArgument`] saying the attribute is missing or what it equals instead.
    pub fn assert_attribute(&self, name: &str, value: &str) -> Result<(), ShimError> {
        match self.attribute(name) {
            None => Err(invalid(format!("Attribute '{name}' was not found"))),
            Some(found) if found == value => Ok(()),
            Some(found) => Err(invalid(format!(
                "Attribute '{name}' equals '{found}', not '{value}'"
            ))),
        }
    }
}

fn invalid(text: String) -> ShimError {
    ShimError::InvalidArgument(text)
}

/// The attributes of a Fabric CA certificate; none for a certificate without the extension.
fn attributes(certificate: &X509Certificate<'_>) -> Result<BTreeMap<String, String>, ShimError> {
    #[derive(serde::Deserialize)]
    struct Attributes {
        attrs: BTreeMap<String, String>,
    }
    let oid: Oid<'_> = ATTRIBUTES_OID
        .parse()
        .map_err(|_| invalid("the attribute OID does not parse".to_owned()))?;
    let Some(extension) = certificate
        .extensions()
        .iter()
        .find(|extension| extension.oid == oid)
    else {
        return Ok(BTreeMap::new());
    };
    serde_json::from_slice::<Attributes>(extension.value)
        .map(|parsed| parsed.attrs)
        .map_err(|e| {
            invalid(format!(
                "the certificate's attributes are not valid JSON: {e}"
            ))
        })
}

/// A distinguished name as Fabric's `cid` writes it: most specific first (`CN` before `OU`
/// before `O` … before `C`), values of one attribute joined by `+`, RFC 4514 escapes.
fn distinguished_name(name: &X509Name<'_>) -> String {
    let mut parts = Vec::new();
    for (oid, label) in NAMED_ATTRIBUTES {
        let values: Vec<String> = name
            .iter_attributes()
            .filter(|attribute| attribute.attr_type().to_id_string() == oid)
            .filter_map(|attribute| attribute.as_str().ok())
            .map(|value| format!("{label}={}", escape(value)))
            .collect();
        if !values.is_empty() {
            parts.push(values.join("+"));
        }
    }
    parts.join(",")
}

/// Escapes a DN value: `,+"\<>;` anywhere, a leading space or `#`, a trailing space.
fn escape(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut escaped = String::with_capacity(value.len());
    for (index, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (index == 0 && (c == ' ' || c == '#'))
            || (index == last && c == ' ');
        if special {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, KeyPair};

    use super::*;

    /// A certificate issued by a CA named `ca.org1`, for `subject`, with `attributes` JSON.
    fn creator(subject: &[(DnType, &str)], attributes: Option<&str>) -> Vec<u8> {
        let ca_key = KeyPair::generate().expect("a key");
        let mut ca_params = CertificateParams::default();
        let mut ca_name = DistinguishedName::new();
        ca_name.push(DnType::CountryName, "US");
        ca_name.push(DnType::OrganizationName, "org1.example.com");
        ca_name.push(DnType::CommonName, "ca.org1.example.com");
        ca_params.distinguished_name = ca_name;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("a CA");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        for (kind, value) in subject {
            name.push(kind.clone(), *value);
        }
        params.distinguished_name = name;
        if let Some(json) = attributes {
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &[1, 2, 3, 4, 5, 6, 7, 8, 1],
                    json.as_bytes().to_vec(),
                ));
        }
        let certificate = params.signed_by(&key, &issuer).expect("a certificate");
        drop(ca);
        SerializedIdentity {
            mspid: "Org1MSP".to_owned(),
            id_bytes: certificate.pem().into_bytes(),
        }
        .encode_to_vec()
    }

    #[test]
    fn the_id_names_subject_and_issuer_most_specific_first() -> Result<(), ShimError> {
        let identity = ClientIdentity::from_creator(&creator(
            &[
                (DnType::CountryName, "US"),
                (DnType::StateOrProvinceName, "California"),
                (DnType::OrganizationName, "org1.example.com"),
                (DnType::OrganizationalUnitName, "client"),
                (DnType::CommonName, "User1@org1.example.com"),
            ],
            None,
        ))?;
        assert_eq!(identity.msp_id(), "Org1MSP");
        assert_eq!(
            identity.id(),
            "x509::CN=User1@org1.example.com,OU=client,O=org1.example.com,ST=California,C=US\
             ::CN=ca.org1.example.com,O=org1.example.com,C=US"
        );
        assert_eq!(identity.attribute("hf.EnrollmentID"), None);
        Ok(())
    }

    #[test]
    fn fabric_ca_attributes_are_read_and_asserted() -> Result<(), ShimError> {
        let identity = ClientIdentity::from_creator(&creator(
            &[(DnType::CommonName, "user1")],
            Some(r#"{"attrs":{"hf.EnrollmentID":"user1","hf.Type":"client","role":"auditor"}}"#),
        ))?;
        assert_eq!(identity.attribute("hf.Type"), Some("client"));
        identity.assert_attribute("role", "auditor")?;
        let refused = identity
            .assert_attribute("role", "admin")
            .expect_err("wrong value");
        assert_eq!(
            refused.to_string(),
            "Attribute 'role' equals 'auditor', not 'admin'"
        );
        let refused = identity.assert_attribute("dept", "x").expect_err("missing");
        assert_eq!(refused.to_string(), "Attribute 'dept' was not found");
        Ok(())
    }

    #[test]
    fn special_characters_in_a_name_are_escaped() {
        assert_eq!(escape("Smith, John"), "Smith\\, John");
        assert_eq!(escape(" #lead"), "\\ #lead");
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(escape("trail "), "trail\\ ");
    }

    #[test]
    fn a_creator_without_a_certificate_is_refused_with_the_reason() {
        let creator = SerializedIdentity {
            mspid: "Org1MSP".to_owned(),
            id_bytes: b"not a certificate".to_vec(),
        }
        .encode_to_vec();
        let refused = ClientIdentity::from_creator(&creator).expect_err("no PEM");
        assert!(
            refused
                .to_string()
                .starts_with("the creator's certificate is not PEM"),
            "{refused}"
        );
    }
}
