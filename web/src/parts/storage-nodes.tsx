// The storage nodes of a PostgreSQL installation, on the dashboard: whether each is up, its disk
// and how many repositories it holds. Nothing on one machine (no nodes).
import { api } from '../api';
import { bytes, Time } from '../format';
import { useLoad } from '../hooks';
import { useLive } from '../live';

interface StorageNode {
  name: string;
  address: string;
  up: boolean;
  heartbeatAt: string;
  capacityBytes: number;
  freeBytes: number;
  repositories: number;
}

export function StorageNodes() {
  const live = useLive();
  const nodes = useLoad(() => api<{ nodes: StorageNode[] }>('GET', '/nodes'), [live.changes]);
  const list = nodes.data?.nodes ?? [];
  if (list.length === 0) return null;
  return (
    <section aria-labelledby="nodes-heading">
      <h2 id="nodes-heading">Storage nodes</h2>
      <div className="table-wrap">
        <table className="nodes">
          <thead>
            <tr>
              <th scope="col">Node</th>
              <th scope="col">State</th>
              <th scope="col">Disk</th>
              <th scope="col">Repositories</th>
            </tr>
          </thead>
          <tbody>
            {list.map((n) => (
              <tr key={n.name} data-node={n.name}>
                <th scope="row">
                  {n.name}
                  <div className="muted small">{n.address}</div>
                </th>
                <td data-label="State">
                  {n.up ? (
                    <span className="badge ok" data-node-state="up">up</span>
                  ) : (
                    <>
                      <span className="badge late" data-node-state="down">down</span>
                      <div className="muted small">
                        last heard <Time at={n.heartbeatAt} />; sessions of its repositories fail until it is back
                      </div>
                    </>
                  )}
                </td>
                <td data-label="Disk">
                  {bytes(n.freeBytes)} <span className="muted">free of {bytes(n.capacityBytes)}</span>
                </td>
                <td data-label="Repositories">{n.repositories}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
