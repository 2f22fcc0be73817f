//! The registry's two accounts: `bfctl-push`, which bfctl itself uses to
//! push images and the disk, and `bfctl-pull`, which the cluster uses
//! (the image pull Secret). Passwords are 32 random letters and digits;
//! the registry holds only their bcrypt hashes (an htpasswd file, `$2y$`
//! as Apache's `htpasswd -B` writes them, which Zot and the distribution
//! registry both read).

use serde::{Deserialize, Serialize};

/// The account that pushes.
pub const PUSH_USER: &str = "bfctl-push";
/// The account that only pulls.
pub const PULL_USER: &str = "bfctl-pull";

/// bcrypt's cost: 2^10 rounds, htpasswd's default.
const COST: u32 = 10;

/// A user name and password. Never printed: `Debug` hides the password.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Account({}, password hidden)", self.username)
    }
}

/// Both accounts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Accounts {
    pub push: Account,
    pub pull: Account,
}

impl Accounts {
    /// New accounts with new passwords.
    pub fn generate() -> Accounts {
        let account = |username: &str| Account {
            username: username.to_string(),
            password: crate::plan::secrets::generate_password(),
        };
        Accounts {
            push: account(PUSH_USER),
            pull: account(PULL_USER),
        }
    }

    /// The htpasswd file: one `user:bcrypt-hash` line per account.
    pub fn htpasswd(&self) -> anyhow::Result<String> {
        let mut text = String::new();
        for account in [&self.push, &self.pull] {
            let hash = bcrypt::hash_with_result(&account.password, COST)
                .map_err(|error| anyhow::anyhow!("hashing a password: {error}"))?
                .format_for_version(bcrypt::Version::TwoY);
            text.push_str(&format!("{}:{hash}\n", account.username));
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_htpasswd_file_holds_hashes_that_verify_and_never_the_passwords() {
        let accounts = Accounts::generate();
        assert_ne!(accounts.push.password, accounts.pull.password);
        let file = accounts.htpasswd().unwrap();
        assert!(!file.contains(&accounts.push.password));
        assert!(!file.contains(&accounts.pull.password));
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines.len(), 2);
        let (user, hash) = lines[0].split_once(':').unwrap();
        assert_eq!(user, PUSH_USER);
        assert!(hash.starts_with("$2y$10$"), "{hash}");
        assert!(bcrypt::verify(&accounts.push.password, hash).unwrap());
        assert!(!bcrypt::verify("wrong", hash).unwrap());
        assert!(!format!("{accounts:?}").contains(&accounts.pull.password));
    }
}
