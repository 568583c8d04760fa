"""Sensor-pair simulator: synthetic night-light scenes, their evolution between years, and what DMSP-OLS
and VIIRS DNB record of them (sensor models in nightlight_fusion_plugin.core.sensor.sensors)."""
