//! The `ccvm.Admin` service: what `ccvm scc list|reload`, `ccvm chaincode install|list` and
//! `ccvm channel create` call.
//! System chaincodes are reloaded only from what the node already has (its directory and
//! built-ins). Installing a package only stores it: it runs once a definition naming it is
//! committed through `_lifecycle`, which takes an endorsed transaction.
//!
//! Every call must be signed by an admin of the node's organization (see
//! [`crate::signed_call`]); anything else is refused before the call does anything.

use ccvm_proto::ccvm::admin_server::{self, AdminServer};
use ccvm_proto::ccvm::{
    CreateChannelRequest, CreateChannelResponse, InstallPackageRequest, InstalledPackage,
    LaunchRequest, ListPackagesRequest, ListRunningRequest, ListSystemChaincodesRequest,
    PackageList, ReloadSystemChaincodeRequest, ReloadSystemChaincodeResponse, RunningChaincodes,
    SystemChaincode, SystemChaincodeList,
};
use std::sync::Arc;
use std::time::SystemTime;

use ccvm_proto::Message;
use tonic::{Request, Response, Status};

use super::access::Access;
use super::channels::Channels;
use super::launch_stream::{self, LaunchEvents};
use super::status::ServiceError;
use super::system_chaincodes::{Origin, SystemChaincodes};
use crate::chaincode::ChaincodeSupport;
use crate::package::{Package, PackageStore};
use crate::policy::ADMIN_SERVICE;
use crate::signed_call::{self, ADMIN_REQUEST_METADATA};

/// The `ccvm.Admin` service.
pub(super) struct AdminService {
    system_chaincodes: SystemChaincodes,
    packages: PackageStore,
    support: ChaincodeSupport,
    channels: Arc<Channels>,
    access: Arc<Access>,
}

impl AdminService {
    pub fn server(
        system_chaincodes: SystemChaincodes,
        packages: PackageStore,
        support: ChaincodeSupport,
        channels: Arc<Channels>,
        access: Arc<Access>,
    ) -> AdminServer<Self> {
        AdminServer::new(Self {
            system_chaincodes,
            packages,
            support,
            channels,
            access,
        })
    }

    /// Checks that `request` to `method` is signed, lately, by an admin of the node's
    /// organization.
    fn authorize<T: Message>(&self, request: &Request<T>, method: &str) -> Result<(), Status> {
        let signed = request
            .metadata()
            .get_bin(ADMIN_REQUEST_METADATA)
            .map(|value| value.to_bytes())
            .transpose()
            .map_err(|e| ServiceError::Malformed(format!("{ADMIN_REQUEST_METADATA}: {e}")))?;
        let call = signed_call::open(
            signed.as_deref(),
            method,
            request.get_ref(),
            SystemTime::now(),
        )
        .map_err(ServiceError::from)?;
        self.access
            .authorize(ADMIN_SERVICE, &call.creator, &call.payload, &call.signature)
            .map_err(ServiceError::from)?;
        Ok(())
    }
}

fn installed(package: Package) -> InstalledPackage {
    InstalledPackage {
        package_id: package.id,
        label: package.label,
        platform: package.platform.as_str().to_owned(),
    }
}

#[tonic::async_trait]
impl admin_server::Admin for AdminService {
    async fn list_system_chaincodes(
        &self,
        request: Request<ListSystemChaincodesRequest>,
    ) -> Result<Response<SystemChaincodeList>, Status> {
        self.authorize(&request, "/ccvm.Admin/ListSystemChaincodes")?;
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
        self.authorize(&request, "/ccvm.Admin/ReloadSystemChaincode")?;
        let name = request.into_inner().name;
        self.system_chaincodes
            .reload(&name)
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(ReloadSystemChaincodeResponse {}))
    }

    async fn install_package(
        &self,
        request: Request<InstallPackageRequest>,
    ) -> Result<Response<InstalledPackage>, Status> {
        self.authorize(&request, "/ccvm.Admin/InstallPackage")?;
        let bytes = request.into_inner().package;
        let packages = self.packages.clone();
        let package = tokio::task::spawn_blocking(move || packages.install(&bytes))
            .await
            .map_err(|e| ServiceError::TaskFailed(e.to_string()))?
            .map_err(ServiceError::from)?;
        Ok(Response::new(installed(package)))
    }

    async fn list_packages(
        &self,
        request: Request<ListPackagesRequest>,
    ) -> Result<Response<PackageList>, Status> {
        self.authorize(&request, "/ccvm.Admin/ListPackages")?;
        let packages = self.packages.list().map_err(ServiceError::from)?;
        Ok(Response::new(PackageList {
            packages: packages.into_iter().map(installed).collect(),
        }))
    }

    type LaunchStream = LaunchEvents;

    async fn launch(
        &self,
        request: Request<LaunchRequest>,
    ) -> Result<Response<Self::LaunchStream>, Status> {
        self.authorize(&request, "/ccvm.Admin/Launch")?;
        let name = request.into_inner().name;
        Ok(Response::new(launch_stream::launch(
            self.support.clone(),
            name,
        )))
    }

    async fn list_running(
        &self,
        request: Request<ListRunningRequest>,
    ) -> Result<Response<RunningChaincodes>, Status> {
        self.authorize(&request, "/ccvm.Admin/ListRunning")?;
        Ok(Response::new(RunningChaincodes {
            names: self.support.registry().names(),
        }))
    }

    async fn create_channel(
        &self,
        request: Request<CreateChannelRequest>,
    ) -> Result<Response<CreateChannelResponse>, Status> {
        self.authorize(&request, "/ccvm.Admin/CreateChannel")?;
        let name = request.into_inner().name;
        let genesis = self.channels.create(&name).map_err(ServiceError::from)?;
        Ok(Response::new(CreateChannelResponse {
            genesis_block: genesis.encode_to_vec(),
        }))
    }
}
