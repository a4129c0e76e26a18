# bash completion for ducky(1). Plain bash, no bash-completion helpers needed:
#   source completions/ducky.bash     (installed as .../bash-completion/completions/ducky)

_ducky() {
	local cur prev cmd i w nargs=0
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=""
	[ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()

	local commands="ping token request get post put patch delete help"
	local global="--config --client-id --secret-file --secret-stdin --base-url --token-url --audience
		--token-auth --private-key-file --key-id --signing-alg --assertion-audience --client-cert
		--client-key --ca-file --ca-path --insecure --proxy --timeout --connect-timeout --retries
		--max-body --raw --include --verbose --help --version -i -v -h"
	local request="--query --header --json --data --no-auth -q -H"

	# the command: the first word that is neither an option nor an option's value
	cmd=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		--config | --client-id | --secret-file | --base-url | --token-url | --audience | --token-auth | \
			--private-key-file | --key-id | --signing-alg | --assertion-audience | --client-cert | \
			--client-key | --ca-file | --ca-path | --proxy | --timeout | --connect-timeout | --retries | \
			--max-body | --query | --header | --json | --data | -q | -H)
			((i++))
			;;
		--) ;;
		-*) ;;
		*)
			if [ -z "$cmd" ]; then cmd=$w; else ((nargs++)); fi
			;;
		esac
	done

	# an option's value
	case $prev in
	--config | --secret-file | --ca-file | --private-key-file | --client-cert | --client-key)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return 0
		;;
	--ca-path)
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return 0
		;;
	--token-auth)
		mapfile -t COMPREPLY < <(compgen -W "json form basic private_key_jwt tls_client_auth" -- "$cur")
		return 0
		;;
	--signing-alg)
		mapfile -t COMPREPLY < <(compgen -W "RS256 RS384 PS256 ES256" -- "$cur")
		return 0
		;;
	--json | --data)
		if [[ $cur == @* ]]; then
			mapfile -t COMPREPLY < <(compgen -f -- "${cur#@}")
			COMPREPLY=("${COMPREPLY[@]/#/@}")
		else
			mapfile -t COMPREPLY < <(compgen -W "- @" -- "$cur")
		fi
		return 0
		;;
	-H | --header)
		mapfile -t COMPREPLY < <(compgen -W "'Content-Type:' 'Accept:'" -- "$cur")
		return 0
		;;
	--client-id | --base-url | --token-url | --audience | --key-id | --assertion-audience | --proxy | \
		--timeout | --connect-timeout | --retries | --max-body | -q | --query)
		return 0
		;;
	esac

	local words="" options=""
	case $cmd in
	"") words=$commands options=$global ;;
	ping) options="--protected $global" ;;
	token) options="--show --forget $global" ;;
	help) [ "$nargs" -eq 0 ] && words=$commands ;;
	request)
		[ "$nargs" -eq 0 ] && words="GET POST PUT PATCH DELETE HEAD OPTIONS"
		options="$request $global"
		;;
	get | post | put | patch | delete) options="$request $global" ;;
	esac
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
	else
		mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
	fi
	return 0
}
complete -F _ducky ducky
