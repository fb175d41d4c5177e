// The role matrix with the real borg client over a real OpenSSH sshd with borgkeep authorized-keys (the real ssh client).
import { defineRoleMatrix } from '../helpers/role-matrix.js';

defineRoleMatrix('prune', 'openssh');
