//! The `ccvm.Admin` service: what `ccvm scc list|reload` and `ccvm chaincode install|list` call.
//! System chaincodes are reloaded only from what the node already has (its directory and
//! built-ins). Installing a package only stores it: it runs once a definition naming it is
//! committed through `_lifecycle`, which takes an endorsed transaction.

use ccvm_proto::ccvm::admin_server::{self, AdminServer};
use ccvm_proto::ccvm::{
    InstallPackageRequest, InstalledPackage, LaunchRequest, ListPackagesRequest,
    ListRunningRequest, ListSystemChaincodesRequest, PackageList, ReloadSystemChaincodeRequest,
    ReloadSystemChaincodeResponse, RunningChaincodes, SystemChaincode, SystemChaincodeList,
};
use tonic::{Request, Response, Status};

use super::launch_stream::{self, LaunchEvents};
use super::status::ServiceError;
use super::system_chaincodes::{Origin, SystemChaincodes};
use crate::chaincode::ChaincodeSupport;
use crate::package::{Package, PackageStore};

/// The `ccvm.Admin` service.
pub(super) struct AdminService {
    system_chaincodes: SystemChaincodes,
    packages: PackageStore,
    support: ChaincodeSupport,
}

impl AdminService {
    pub fn server(
        system_chaincodes: SystemChaincodes,
        packages: PackageStore,
        support: ChaincodeSupport,
    ) -> AdminServer<Self> {
        AdminServer::new(Self {
            system_chaincodes,
            packages,
            support,
        })
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
        _request: Request<ListPackagesRequest>,
    ) -> Result<Response<PackageList>, Status> {
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
        let name = request.into_inner().name;
        Ok(Response::new(launch_stream::launch(
            self.support.clone(),
            name,
        )))
    }

    async fn list_running(
        &self,
        _request: Request<ListRunningRequest>,
    ) -> Result<Response<RunningChaincodes>, Status> {
        Ok(Response::new(RunningChaincodes {
            names: self.support.registry().names(),
        }))
    }
}
