"""Leader election, leader detection and the durable registry (the only package importing kazoo).

Public names:

* election -- :class:`Contender` (protocol), :class:`ZooKeeperContender`,
  :class:`StandaloneContender`, :func:`create_contender`;
* detection -- :class:`Detector` (protocol), :class:`ZooKeeperDetector`,
  :class:`StandaloneDetector`, :func:`create_detector`, :class:`EndpointDetector`;
* the registry -- :class:`Registry` (protocol), :class:`FileRegistry`,
  :class:`ZooKeeperRegistry`, :class:`RegistryState` and its records and
  operations, :class:`FencedError` and the other registry errors;
* URLs -- :class:`ZkUrl`, :func:`parse_zk_url`, :func:`parse_host_port`.

See README.md beside this file for the flow map.
"""

from mesoslite.coordination.factory import EndpointDetector, create_contender, create_detector
from mesoslite.coordination.interface import Contender, CoordinationError, Detector
from mesoslite.coordination.masterinfo import (
    MASTER_INFO_LABEL,
    MasterInfoError,
    master_info_from_json,
    master_info_to_json,
)
from mesoslite.coordination.registry import (
    FencedError,
    FileRegistry,
    Registry,
    RegistryConflictError,
    RegistryError,
    RegistryTimeoutError,
)
from mesoslite.coordination.registry_state import (
    AdmitAgent,
    MarkAgentUnreachable,
    PutFramework,
    RegistryFormatError,
    RegistryOp,
    RegistryState,
    RemoveAgent,
    RemoveFramework,
    SetMaintenance,
    SetQuota,
    SetWeight,
    StoredAgent,
    StoredFramework,
)
from mesoslite.coordination.standalone import (
    StandaloneContender,
    StandaloneDetector,
    master_info_for_address,
)
from mesoslite.coordination.url import ZkUrl, is_zk_url, parse_host_port, parse_zk_url
from mesoslite.coordination.zk_registry import ZooKeeperRegistry
from mesoslite.coordination.zookeeper import (
    ZooKeeperContender,
    ZooKeeperDetector,
    derived_suspend_grace,
    effective_suspend_grace,
)

__all__ = [
    "MASTER_INFO_LABEL",
    "AdmitAgent",
    "Contender",
    "CoordinationError",
    "Detector",
    "EndpointDetector",
    "FencedError",
    "FileRegistry",
    "MarkAgentUnreachable",
    "MasterInfoError",
    "PutFramework",
    "Registry",
    "RegistryConflictError",
    "RegistryError",
    "RegistryFormatError",
    "RegistryOp",
    "RegistryState",
    "RegistryTimeoutError",
    "RemoveAgent",
    "RemoveFramework",
    "SetMaintenance",
    "SetQuota",
    "SetWeight",
    "StandaloneContender",
    "StandaloneDetector",
    "StoredAgent",
    "StoredFramework",
    "ZkUrl",
    "ZooKeeperContender",
    "ZooKeeperDetector",
    "ZooKeeperRegistry",
    "create_contender",
    "create_detector",
    "derived_suspend_grace",
    "effective_suspend_grace",
    "is_zk_url",
    "master_info_for_address",
    "master_info_from_json",
    "master_info_to_json",
    "parse_host_port",
    "parse_zk_url",
]
