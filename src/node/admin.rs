//! The `ccvm.Admin` service: what `ccvm scc list` and `ccvm scc reload` call. It reveals only
//! names and paths, and reloads only what the node already has (its directory and built-ins), so
//! it accepts no code from the caller.

use ccvm_proto::ccvm::admin_server::{self, AdminServer};
use ccvm_proto::ccvm::{
    ListSystemChaincodesRequest, ReloadSystemChaincodeRequest, ReloadSystemChaincodeResponse,
    SystemChaincode, SystemChaincodeList,
};
use tonic::{Request, Response, Status};

use super::NodeError;
use super::system_chaincodes::{Origin, SystemChaincodes};

/// The `ccvm.Admin` service.
pub(super) struct AdminService {
    system_chaincodes: SystemChaincodes,
}

impl AdminService {
    pub fn server(system_chaincodes: SystemChaincodes) -> AdminServer<Self> {
        AdminServer::new(Self { system_chaincodes })
    }
}

#[tonic::async_trait]
impl admin_server::Admin for AdminService {
    async fn list_system_chaincodes(
        &self,
        _request: Request<ListSystemChaincodesRequest>,
    ) -> Result<Response<SystemChaincodeList>, Status> {
        let chaincodes = self
            .system_chaincodes
            .list()
            .into_iter()
            .map(|status| SystemChaincode {
                name: status.name,
                origin: match status.origin {
                    Origin::BuiltIn => "built-in".to_owned(),
                    Origin::File(path) => path.display().to_string(),
                },
                running: status.running,
            })
            .collect();
        Ok(Response::new(SystemChaincodeList { chaincodes }))
    }

    async fn reload_system_chaincode(
        &self,
        request: Request<ReloadSystemChaincodeRequest>,
    ) -> Result<Response<ReloadSystemChaincodeResponse>, Status> {
        let name = request.into_inner().name;
        match self.system_chaincodes.reload(&name).await {
            Ok(()) => Ok(Response::new(ReloadSystemChaincodeResponse {})),
            Err(e @ NodeError::UnknownSystemChaincode(_)) => Err(Status::not_found(e.to_string())),
            Err(e @ (NodeError::Inproc(_) | NodeError::ChaincodeDir { .. })) => {
                Err(Status::failed_precondition(e.to_string()))
            }
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}
