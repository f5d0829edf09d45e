//! Finding a Vulkan adapter and describing it.
//!
//! Adapters come from wgpu's Vulkan backend only (so `VK_DRIVER_FILES` / `VK_ICD_FILENAMES`
//! pin the driver, e.g. Mesa's lavapipe in CI). Without `JIKJI_VULKAN_ADAPTER=<index>` the
//! backend takes the first adapter in the order discrete GPU, integrated GPU, virtual GPU,
//! CPU (lavapipe), other: a real GPU when there is one.

/// One Vulkan adapter as `jikji devices` lists it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    /// `discrete GPU`, `integrated GPU`, `virtual GPU`, `CPU` or `other`.
    pub kind: &'static str,
    pub driver: String,
    pub driver_info: String,
    pub max_buffer_bytes: u64,
    pub max_storage_binding_bytes: u64,
    pub max_workgroup_invocations: u32,
    pub subgroup_sizes: (u32, u32),
    pub shader_f16: bool,
    pub subgroups: bool,
}

pub(crate) fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    wgpu::Instance::new(desc)
}

fn kind(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "CPU",
        wgpu::DeviceType::Other => "other",
    }
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// The Vulkan adapters of this machine in preference order.
pub(crate) fn adapters(inst: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut v = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::VULKAN));
    v.sort_by_key(|a| rank(a.get_info().device_type));
    v
}

pub(crate) fn summary(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    let sg = (info.subgroup_min_size, info.subgroup_max_size);
    let limits = a.limits();
    let f = a.features();
    AdapterSummary {
        index,
        name: info.name,
        kind: kind(info.device_type),
        driver: info.driver,
        driver_info: info.driver_info,
        max_buffer_bytes: limits.max_buffer_size,
        max_storage_binding_bytes: limits.max_storage_buffer_binding_size,
        max_workgroup_invocations: limits.max_compute_invocations_per_workgroup,
        subgroup_sizes: sg,
        shader_f16: f.contains(wgpu::Features::SHADER_F16),
        subgroups: f.contains(wgpu::Features::SUBGROUP),
    }
}

/// Every Vulkan adapter wgpu finds (empty when there is no Vulkan loader or driver).
pub fn list() -> Vec<AdapterSummary> {
    let inst = instance();
    adapters(&inst).iter().enumerate().map(|(i, a)| summary(i, a)).collect()
}
