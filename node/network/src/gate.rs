//! The permission check: a `NetworkBehaviour` that refuses, once the noise
//! handshake has authenticated the remote key and before any protocol
//! stream is opened, every connection from or to a peer that is not in the
//! allow-list.

use std::{
    convert::Infallible,
    task::{Context, Poll},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    swarm::{
        ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm, dummy,
    },
};
use std::sync::Arc;

use crate::{network::Shared, stats::bump};

/// Why a connection was denied.
#[derive(Debug, thiserror::Error)]
#[error("peer {0} is not in the allow-list")]
pub(crate) struct NotAllowed(PeerId);

/// Checks each established connection against `Shared::allowed`.
pub(crate) struct Gate {
    pub(crate) shared: Arc<Shared>,
}

impl Gate {
    fn check(&self, peer: PeerId, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        if self.shared.is_allowed(&peer) {
            return Ok(());
        }
        bump(&self.shared.counters.refused_connections);
        tracing::warn!(%peer, %remote, "refused a connection: peer is not in the allow-list");
        Err(ConnectionDenied::new(NotAllowed(peer)))
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(peer, remote)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        remote: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(peer, remote)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
