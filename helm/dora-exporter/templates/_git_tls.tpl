{{/*
Private Git (git.ssh, git.https, git.caBundle) and per-listener TLS (tls.http, tls.webhooks): the
container's environment, mounts and volumes. Every credential is a file from an existing Secret;
nothing here reaches the ConfigMap.
*/}}

{{/* The git environment: GIT_SSH_COMMAND for a deploy key, a credential helper for a token, a CA bundle. */}}
{{- define "dora-exporter.gitEnv" -}}
{{- $g := .Values.git -}}
{{- if $g.ssh.existingSecret }}
- name: GIT_SSH_COMMAND
  value: {{ printf "ssh -i %s/%s -o UserKnownHostsFile=%s/%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes" $g.ssh.mountPath $g.ssh.identityKey $g.ssh.mountPath $g.ssh.knownHostsKey | quote }}
{{- end }}
{{- if $g.https.existingSecret }}
- name: DORA_GIT_USERNAME
  value: {{ $g.https.username | quote }}
- name: DORA_GIT_TOKEN_FILE
  value: {{ printf "%s/%s" $g.https.mountPath $g.https.tokenKey | quote }}
# git config from the environment (git >= 2.31): a helper that answers `get` with the mounted token
- name: GIT_CONFIG_COUNT
  value: "1"
- name: GIT_CONFIG_KEY_0
  value: credential.helper
- name: GIT_CONFIG_VALUE_0
  value: {{ `!f() { test "$1" = get || return 0; echo "username=$DORA_GIT_USERNAME"; printf 'password=%s\n' "$(cat "$DORA_GIT_TOKEN_FILE")"; }; f` | quote }}
{{- end }}
{{- if or $g.caBundle.existingConfigMap $g.caBundle.existingSecret }}
- name: GIT_SSL_CAINFO
  value: {{ printf "%s/%s" $g.caBundle.mountPath $g.caBundle.key | quote }}
{{- end }}
{{- end }}

{{- define "dora-exporter.gitAndTlsMounts" -}}
{{- $g := .Values.git -}}
{{- if $g.ssh.existingSecret }}
- name: git-ssh
  mountPath: {{ $g.ssh.mountPath }}
  readOnly: true
{{- end }}
{{- if $g.https.existingSecret }}
- name: git-https
  mountPath: {{ $g.https.mountPath }}
  readOnly: true
{{- end }}
{{- if or $g.caBundle.existingConfigMap $g.caBundle.existingSecret }}
- name: git-ca
  mountPath: {{ $g.caBundle.mountPath }}
  readOnly: true
{{- end }}
{{- range $listener := list "http" "webhooks" }}
{{- $tls := get $.Values.tls $listener }}
{{- if $tls.existingSecret }}
{{- /* no subPath: the kubelet swaps a Secret's files through a symlink, which the listener notices */}}
- name: tls-{{ $listener }}
  mountPath: {{ $tls.mountPath }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{- define "dora-exporter.gitAndTlsVolumes" -}}
{{- $g := .Values.git -}}
{{- if $g.ssh.existingSecret }}
- name: git-ssh
  secret:
    secretName: {{ $g.ssh.existingSecret }}
    # root-owned, group fsGroup: ssh accepts a key not owned by its user
    defaultMode: 0440
    items:
      - key: {{ $g.ssh.identityKey }}
        path: {{ $g.ssh.identityKey }}
      - key: {{ $g.ssh.knownHostsKey }}
        path: {{ $g.ssh.knownHostsKey }}
{{- end }}
{{- if $g.https.existingSecret }}
- name: git-https
  secret:
    secretName: {{ $g.https.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $g.https.tokenKey }}
        path: {{ $g.https.tokenKey }}
{{- end }}
{{- if $g.caBundle.existingConfigMap }}
- name: git-ca
  configMap:
    name: {{ $g.caBundle.existingConfigMap }}
    items:
      - key: {{ $g.caBundle.key }}
        path: {{ $g.caBundle.key }}
{{- else if $g.caBundle.existingSecret }}
- name: git-ca
  secret:
    secretName: {{ $g.caBundle.existingSecret }}
    items:
      - key: {{ $g.caBundle.key }}
        path: {{ $g.caBundle.key }}
{{- end }}
{{- range $listener := list "http" "webhooks" }}
{{- $tls := get $.Values.tls $listener }}
{{- if $tls.existingSecret }}
- name: tls-{{ $listener }}
  secret:
    secretName: {{ $tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}
{{- end }}
