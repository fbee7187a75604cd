//! The NetSuite simulator (placeholder until the sim branch merges).
pub struct Seed;
impl Seed {
    pub fn demo() -> Seed {
        Seed
    }
}
pub struct DemoValues {
    pub account_id: &'static str,
    pub role_id: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub consumer_key: &'static str,
    pub consumer_secret: &'static str,
}
pub fn demo_values() -> DemoValues {
    todo!()
}
pub struct HandMadeToken {
    pub account: String,
    pub email: String,
    pub role: String,
    pub consumer_key: String,
    pub name: String,
}
pub struct TokenView;
impl TokenView {
    pub fn is_active(&self) -> bool {
        todo!()
    }
}
pub struct Inspection {
    pub tokens: Vec<TokenView>,
}
#[derive(Clone)]
pub struct Simulator;
impl Simulator {
    pub async fn start(_s: Seed) -> std::io::Result<SimHandle> {
        todo!()
    }
    pub fn create_token(
        &self,
        _r: HandMadeToken,
    ) -> Result<(String, crate::secret::SecretString), String> {
        todo!()
    }
    pub fn inspect(&self) -> Inspection {
        todo!()
    }
}
pub struct SimHandle;
impl SimHandle {
    pub fn base_url(&self) -> String {
        todo!()
    }
    pub fn sim(&self) -> &Simulator {
        todo!()
    }
    pub async fn shutdown(self) {}
}
