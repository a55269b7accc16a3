"""`GET /v1/service`: what a client needs to know about the service before it deploys."""

from pydantic import BaseModel, Field


class ServiceInfo(BaseModel):
    version: str = Field(description="the mcp-fc version the API runs")
    region: str = Field(description="the region of a deploy that names none")
    regions: list[str] = Field(description="the regions Function Compute 3.0 has (any other is a 422)")
    fc_local: bool = Field(
        description="FC is the local emulator (its endpoint is on loopback): it runs each function's command "
        "on the service's host and pulls no image"
    )
    default_image: str | None = Field(
        default=None,
        description="with the local emulator, the image a client may send when the user gave none; null when "
        "FC is Alibaba Cloud, where every deploy names its image",
    )
