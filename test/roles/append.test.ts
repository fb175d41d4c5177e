// The real borg client with a append key: what the append role may and may not do.
import { defineRoleMatrix } from '../helpers/role-matrix.js';

defineRoleMatrix('append');
