//! The `client_credentials` grant: machine-to-machine, no user and no browser; the client
//! authenticates with its secret (rmcp's exchange) or a signed assertion (`private_key_jwt`).

use rmcp::transport::auth::{AuthClient, AuthError, ClientCredentialsConfig};
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;

use super::Authorizer;
use crate::oauth::error::OAuthError;
use crate::oauth::{assertion, discovery};

impl Authorizer {
    /// The `client_credentials` grant: no user, no browser.
    pub(super) async fn client_credentials(
        &self,
        client: &AuthClient<reqwest::Client>,
    ) -> Result<(), OAuthError> {
        let settings = &self.inner.settings;
        let mut manager = client.auth_manager.lock().await;
        let found = discovery::discover(&manager, settings, None).await?;
        let (resource, metadata) = (found.resource.clone(), found.metadata.clone());
        self.adopt(&mut manager, found, None).await?;
        let scopes = match &settings.scopes {
            Some(scopes) => scopes.clone(),
            None => manager.select_initial_scopes(&[]).await,
        };
        if let Some(key) = &settings.signing_key {
            let (store, http) = (&self.inner.store, discovery::http_client(settings));
            let grant = (key, &metadata, scopes.as_slice(), resource.as_str());
            return assertion::client_credentials(&http, store, &mut manager, settings, grant)
                .await;
        }
        let (Some(client_id), Some(client_secret)) = (&settings.client_id, &settings.client_secret)
        else {
            return Err(
                self.login_error("client_credentials needs a client id and secret".to_owned())
            );
        };
        let config = ClientCredentialsConfig::ClientSecret {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            scopes,
            resource: Some(resource),
        };
        let token_error = |e: AuthError| OAuthError::Token {
            server: settings.server.clone(),
            message: e.to_string(),
        };
        manager
            .validate_client_credentials_metadata(&config)
            .map_err(token_error)?;
        manager
            .configure_client_credentials(&config)
            .map_err(token_error)?;
        manager
            .exchange_client_credentials(&config)
            .with_subscriber(NoSubscriber::default())
            .await
            .map_err(token_error)?;
        Ok(())
    }
}
