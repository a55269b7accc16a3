"""GET /v1/service: the service's default region, FC's regions and whether FC is the local emulator.

The CLI asks it when `--image` is left out: the local emulator (`mcp-fc dev`) runs the command on its host
and ignores the image, so a default stands in; Alibaba Cloud FC needs a real one.
"""

from __future__ import annotations

from fastapi import APIRouter

from deployer import __version__
from deployer.api.deps import CurrentOwner, SettingsDep
from deployer.settings import LOCAL_IMAGE
from schemas.limits import FC_REGIONS
from schemas.service import ServiceInfo

router = APIRouter(tags=["service"])


@router.get("/v1/service", response_model=ServiceInfo)
def service_info(owner: CurrentOwner, settings: SettingsDep) -> ServiceInfo:
    """What a client needs before it deploys (authenticated like every /v1 route)."""
    local = settings.fc_is_local
    return ServiceInfo(
        version=__version__,
        region=settings.region,
        regions=sorted(FC_REGIONS),
        fc_local=local,
        default_image=LOCAL_IMAGE if local else None,
    )
