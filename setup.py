"""ament_python install script for dsr_ros (works with colcon and with plain pip)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'dsr_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    package_data={PACKAGE: ['weights/*.pt', 'weights/*.md']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py') + glob('launch/*.launch.xml')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='dsr_ros developers',
    maintainer_email='dev@dsr-ros.local',
    description='Single depth super-resolution node for ROS 2 depth cameras (DSRNet).',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            f'dsr_node = {PACKAGE}.ros.node:main',
            f'dsr_demo = {PACKAGE}.ros.demo:main',
        ],
    },
)
