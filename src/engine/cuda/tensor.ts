// Device tensors of the CUDA backend: a handle (shape, dtype) over a storage block from the addon's caching
// allocator. reshape() shares the storage; free() of any view returns it once. Storage that becomes unreachable
// without free() goes back to the cache when the garbage collector finalizes it (a safety net, not the plan).
import type { DType, Tensor } from '../backend.js';
import { numel } from '../backend.js';
import type { NativeAddon, Ptr } from './addon.js';

export class CudaStorage {
  freed = false;
  constructor(readonly ptr: Ptr, readonly bytes: number) {}
}

export class CudaTensor implements Tensor {
  readonly size: number;
  constructor(readonly shape: readonly number[], readonly dtype: DType, readonly storage: CudaStorage) {
    this.size = numel(shape);
  }

  get ptr(): Ptr {
    return this.storage.ptr;
  }
}

/** Allocates and frees storage; unreachable storage is returned to the cache by a FinalizationRegistry. */
export class StoragePool {
  private readonly registry: FinalizationRegistry<Ptr>;

  constructor(private readonly addon: NativeAddon) {
    this.registry = new FinalizationRegistry((ptr: Ptr) => {
      try {
        addon.free(ptr);
      } catch {
        // the process is shutting down or the device is gone: nothing to return
      }
    });
  }

  allocate(bytes: number): CudaStorage {
    const s = new CudaStorage(this.addon.alloc(bytes), bytes);
    this.registry.register(s, s.ptr, s);
    return s;
  }

  release(s: CudaStorage): void {
    if (s.freed) return;
    s.freed = true;
    this.registry.unregister(s);
    this.addon.free(s.ptr);
  }
}
